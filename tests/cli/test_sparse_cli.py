"""``restore`` through the CLI: a sparse file comes back sparse by default and fully allocated
with --no-sparse, bit-exact both ways (allocation measured as st_blocks)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from snapvault.cli.exits import ExitCode
from tests.cli.conftest import Cli
from tests.restore.test_sparse_restore import MiB, allocated, holes, make_sparse, restored  # noqa: F401

pytestmark = pytest.mark.usefixtures("holes")


def test_restore_keeps_holes_and_no_sparse_fills_them(cli: Cli, tmp_path: Path) -> None:
    rng = random.Random(7)
    f = make_sparse(tmp_path / "data" / "disk.img", 8 * MiB, [(MiB, rng.randbytes(16384))])
    assert allocated(f) < MiB
    code, _, err = cli("backup", str(f.parent))
    assert code == ExitCode.OK, err
    assert cli("restore", "-q", "latest", "--target", str(tmp_path / "sparse")) == (ExitCode.OK, "", "")
    assert cli("restore", "-q", "latest", "--no-sparse", "--target", str(tmp_path / "dense")) == (ExitCode.OK, "", "")
    sparse, dense = restored(tmp_path / "sparse", f), restored(tmp_path / "dense", f)
    assert sparse.read_bytes() == dense.read_bytes() == f.read_bytes()
    assert allocated(sparse) < MiB
    assert allocated(dense) >= 8 * MiB
