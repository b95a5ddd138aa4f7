"""The public ways in: ``Engine.backup(..., executor=client)``, ``Restorer.restore(...,
executor=client)`` and the CLI's ``--dask-scheduler`` reach the distributed runs and give what
one process gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.cli.main import run
from tests.conftest import PASSWORD
from tests.distributed.common import Recorder, source_tree
from tests.treecompare import assert_same_tree

pytest.importorskip("distributed")


def test_engine_and_restorer_take_a_dask_client(client: Any, local_repo: sv.Repository, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    seen = Recorder()
    m = sv.Engine(local_repo).backup([src], executor=client, tags=["lake"], callback=seen)
    assert m.tags == ["lake"]
    assert m.stats.files_new == sum(1 for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    assert seen.value == seen.size == m.stats.total_bytes
    # The same snapshot, read on: an incremental run on Dask reads nothing unchanged.
    again = sv.Engine(local_repo).backup([src], executor=client)
    assert again.stats.files_unchanged == m.stats.files_new
    assert (again.stats.files_new, again.stats.files_changed) == (0, 0)
    out = tmp_path / "out"
    result = sv.Restorer(local_repo).restore(m.id, out, executor=client)
    assert result.ok
    assert_same_tree(src, out / str(src).lstrip("/"))
    with pytest.raises(sv.ConfigError, match="include"):
        sv.Restorer(local_repo).restore(m.id, tmp_path / "x", executor=client, include=["*.txt"])


def test_cli_runs_backup_and_restore_on_a_scheduler(
    client: Any, local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    src = source_tree(tmp_path)
    address = client.scheduler.address
    monkeypatch.setenv("SNAPVAULT_PASSWORD", PASSWORD)
    url = local_repo.url
    assert run(["-r", url, "backup", str(src), "--dask-scheduler", address, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    out = tmp_path / "out"
    assert run(["-r", url, "restore", m["id"], "--target", str(out), "--dask-scheduler", address, "-q"]) == 0
    assert_same_tree(src, out / str(src).lstrip("/"))
    capsys.readouterr()
    code = run(["-r", url, "restore", m["id"], "--target", str(out), "--dask-scheduler", address, "-i", "*.txt"])
    assert code == 2
    assert "--dask-scheduler takes no --include" in capsys.readouterr().err
