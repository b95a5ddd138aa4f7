"""bench/run.py's rows for ``snapvault backup --processes N``: the tool, the memory summed over
a command's processes, the ratio columns and the target rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.test_bench_trees import _load

bench_run = _load("run")
scale = _load("scale")
targets = _load("targets")

# A process that holds about 60 MiB resident for a moment.
_HOLD = "import time; b = bytearray(60 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"


def test_the_summed_peak_counts_every_process_of_the_command() -> None:
    two = f'{sys.executable} -c "{_HOLD}" & {sys.executable} -c "{_HOLD}"; wait'
    alone = bench_run.run(["sh", "-c", two])
    summed = bench_run.run(["sh", "-c", two], tree=True)
    # GNU time (or wait4) sees the largest single process; the sampler sees both at once.
    assert 55 << 10 < alone.max_rss_kib < 100 << 10
    assert summed.max_rss_kib > 115 << 10
    proc = subprocess.Popen([sys.executable, "-c", _HOLD])
    try:
        sampler = bench_run.TreeSampler(proc.pid, every=0.02)
        proc.wait()
        assert sampler.stop() > 55 << 10
    finally:
        proc.kill()


def test_the_pooled_tool_names_itself_and_passes_processes(tmp_path: Path) -> None:
    alone = bench_run.Snapvault(tmp_path)
    pooled = bench_run.Snapvault(tmp_path, processes=2)
    assert (alone.name, alone.tree_rss) == ("snapvault", False)
    assert (pooled.name, pooled.tree_rss) == ("snapvault-p2", True)
    assert "--processes" not in alone.backup(tmp_path / "r", tmp_path, 1)
    assert pooled.backup(tmp_path / "r", tmp_path, 1)[-2:] == ["--processes", "2"]


def _section(files: int) -> dict[str, Any]:
    tools = {
        "snapvault": {"first": 10.0, "rebackup": 4.0, "first_rss": 100 << 10, "rebackup_rss": 50 << 10},
        "snapvault-p2": {"first": 6.0, "rebackup": 3.0, "first_rss": 200 << 10, "rebackup_rss": 150 << 10},
        "restic": {"first": 12.0, "rebackup": 8.0, "first_rss": 300 << 10, "rebackup_rss": 300 << 10},
        "borg": {"first": 30.0, "rebackup": 10.0, "first_rss": 200 << 10, "rebackup_rss": 160 << 10},
    }
    return {"date": "d", "files": files, "tools": tools}


def test_scale_tables_give_each_configuration_its_ratios_and_say_what_it_is() -> None:
    lines = scale.render_scales({"scales": {"200000": _section(200_000)}})
    header = next(line for line in lines if line.startswith("| measure"))
    assert "snapvault-p2/restic" in header
    assert "snapvault/borg" in header
    first = next(line for line in lines if line.startswith("| first backup (s)"))
    # snapvault/restic, snapvault/borg, snapvault-p2/restic, snapvault-p2/borg
    assert first.endswith("| 0.83 | 0.33 | 0.50 | 0.20 |")
    assert any("`snapvault-p2` is `snapvault backup --processes 2`" in line for line in lines)


def test_target_rows_for_the_pooled_first_backups() -> None:
    rows = targets.target_rows({"scales": {"200000": _section(200_000), "1000000": _section(1_000_000)}})
    pooled = {r[0]: r for r in rows if "--processes" in r[0]}
    assert set(pooled) == {
        "200k small files, first backup, `--processes 2`",
        "1,000,000 files, first backup, `--processes 2`",
    }
    row = pooled["200k small files, first backup, `--processes 2`"]
    assert row[2] == "0.50x restic (6.00 s against 12.00 s)"
    assert row[3] == "met"
    plain = next(r for r in rows if r[0] == "200k small files, first backup")
    assert plain[2].startswith("0.83x restic")
    assert plain[3] == "not met"


def test_warm_reads_every_regular_file_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one").write_bytes(b"x" * 3000)
    (tmp_path / "a" / "b" / "two").write_bytes(b"y" * 5)
    (tmp_path / "link").symlink_to("a/one")
    assert scale.warm(tmp_path) == 3005
