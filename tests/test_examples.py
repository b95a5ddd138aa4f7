"""The examples run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
