"""``restore --devices`` and ``--setuid``: without them a snapshot restored as root plants no
device node and no setuid program, and stderr says so in one line each."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import snapvault as sv
from tests.cli.test_main import PASSWORD, run
from tests.conftest import FAST_KDF
from tests.test_hostile import Hostile, file_node

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def repo_url(tmp_path: Path) -> str:
    """A repository with one snapshot: a character device and a setuid file."""
    url = str(tmp_path / "repo")
    h = Hostile(sv.Repository.init(url, PASSWORD, kdf=FAST_KDF))
    nodes = [
        {"name": "chr", "type": "chardev", "mode": 0o666, "rdev": os.makedev(1, 3)},
        file_node("suid", [h.data(b"setuid")], size=6, mode=0o4755),
    ]
    h.commit(h.tree(nodes))
    return url


def test_without_the_flags_devices_are_skipped_and_setuid_bits_dropped(repo_url: str, tmp_path: Path) -> None:
    target = tmp_path / "out"
    proc = run("-r", repo_url, "restore", "latest", "--target", str(target))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("warning: chr: chardev not restored")
    assert lines[1:] == [
        "warning: 1 device nodes skipped (made as root with --devices)",
        "warning: setuid/setgid bits dropped from 1 entries (kept with --setuid)",
    ]
    assert not (target / "chr").exists()
    assert stat.S_IMODE(os.stat(target / "suid").st_mode) == 0o755

    doc = json.loads(run("-r", repo_url, "restore", "latest", "--target", str(tmp_path / "j"), "--json").stdout)
    assert (doc["devices_skipped"], doc["setuid_dropped"], doc["ok"]) == (1, 1, True)


@pytest.mark.skipif(not AS_ROOT, reason="device nodes are made only as root")
def test_with_the_flags_devices_and_setuid_bits_are_restored(repo_url: str, tmp_path: Path) -> None:
    target = tmp_path / "out"
    proc = run("-r", repo_url, "restore", "latest", "--target", str(target), "--devices", "--setuid")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert stat.S_ISCHR(os.lstat(target / "chr").st_mode)
    assert stat.S_IMODE(os.stat(target / "suid").st_mode) == 0o4755
