"""A real backup and restore into a local-folder repository, verified byte for byte.

    python examples/quickstart.py [SOURCE_DIR] [--repo DIR]

Without SOURCE_DIR it backs up this project's own ``src`` folder. The repository is created
(or reopened) at ``--repo`` (default ``./demo-vault``) with the password ``demo``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import snapvault as sv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default=str(Path(__file__).resolve().parent.parent / "src"))
    parser.add_argument("--repo", default="demo-vault")
    args = parser.parse_args()
    source = Path(args.source).resolve()

    try:
        repo = sv.Repository.open(args.repo, password="demo")
        print(f"opened repository at {repo.url}")
    except sv.RepositoryNotFound:
        repo = sv.Repository.init(args.repo, password="demo")
        print(f"created repository at {repo.url}")

    engine = sv.Engine(repo)
    first = engine.backup([source], exclude=["__pycache__/"], tags=["demo"])
    s = first.stats
    print(
        f"backup {first.short_id}: {s.total_files} files, {s.total_bytes / 2**20:.1f} MiB read, "
        f"{s.bytes_stored / 2**20:.2f} MiB stored, {s.duration_s:.2f}s"
    )
    again = engine.backup([source], exclude=["__pycache__/"], tags=["demo"])
    print(
        f"unchanged re-backup {again.short_id}: {again.stats.files_unchanged} files unchanged, "
        f"{again.stats.bytes_stored} bytes stored, {again.stats.duration_s:.2f}s"
    )

    with tempfile.TemporaryDirectory() as target:
        result = sv.Restorer(repo).restore(again.id, target, exclude=["__pycache__/"])
        # Snapshots keep absolute paths, so the source reappears below the target.
        restored = Path(target) / os.path.relpath(source, "/")
        print(f"restored {result.files} files ({result.bytes_written / 2**20:.1f} MiB) into a temporary folder")
        for path in source.rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            if path.read_bytes() != (restored / path.relative_to(source)).read_bytes():
                print(f"restored {path} differs", file=sys.stderr)
                return 1
        print("every restored file matches the source byte for byte")
    report = repo.check(read_data=True)
    print(f"check --read-data: {'ok' if report.ok else report.problems}, {report.blobs_read} blobs verified")
    print(f"snapshots in the repository: {len(repo.snapshots())}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
