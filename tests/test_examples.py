"""The examples run as written (the DR example against the S3 and Azure emulators)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import snapvault as sv
from tests.backends.servers import Bucket
from tests.conftest import write

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_backs_up_restores_and_verifies(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    cmd = [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(src), "--repo", str(tmp_path / "vault")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "every restored file matches the source byte for byte" in first.stdout
    assert "check --read-data: ok" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "opened repository" in again.stdout
    assert "snapshots in the repository: 4" in again.stdout


def test_dr_plan_example_replicates_drills_and_reports_on_the_emulators(
    s3_bucket: Bucket, azure_container: Bucket, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for i in range(12):
        write(src / f"d{i % 2}" / f"f{i}.txt", f"file {i}\n" * (i + 1))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3_bucket.storage_options["key"],
        "AWS_SECRET_ACCESS_KEY": s3_bucket.storage_options["secret"],
        "AZURE_STORAGE_CONNECTION_STRING": azure_container.storage_options["connection_string"],
        "DR_PASSWORD": "example password",
    }
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "dr_plan.py"),
        str(src),
        "--workdir",
        str(tmp_path / "dr"),
        "--s3-url",
        s3_bucket.url_for("vault"),
        "--s3-endpoint",
        s3_bucket.emulator.endpoint,
        "--azure-url",
        azure_container.url_for("vault"),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "replicas created: ['s3', 'azure']" in out
    assert "replicate to s3: copied 1, skipped 0" in out
    assert "replicate to azure: copied 1, skipped 0" in out
    assert "drill s3: 10 files restored and verified" in out
    assert "drill azure: 10 files restored and verified" in out
    assert "status s3: rpo:docs met, rto met" in out
    assert "# Disaster-recovery report: example" in out
    assert "## Verdicts" in out
    # The plan stored in the primary names the variables, never their values.
    plan = sv.DRPlan.load(sv.Repository.open(str(tmp_path / "dr" / "primary"), "example password"), "example")
    assert plan.replicas[0].options_env == "DR_S3_OPTIONS"
    assert "example password" not in plan.model_dump_json()
