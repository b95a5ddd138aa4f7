"""bench/prune_bench.py: the snapvault columns' commands and each column against the prune goals
(time <= 0.5x the faster peer, size after <= the smaller peer)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tests.test_bench_trees import _load

prune_bench = _load("prune_bench")

MiB = 2**20


def _section(medians: dict[str, dict[str, float]]) -> dict[str, object]:
    return {"machine": "m", "date": "2026-12-05", "reps": 3, "medians": medians}


def _m(seconds: float, size_mib: float) -> dict[str, float]:
    return {
        "prune": seconds,
        "prune_rss": 100 << 10,
        "size_before": 500 * MiB,
        "size_after": size_mib * MiB,
        "snapshots_left": 2,
    }


def test_each_snapvault_column_runs_forget_prune_with_its_options(tmp_path: Path) -> None:
    tool = SimpleNamespace(name="snapvault", binary="sv")
    cmds = {name: prune_bench._prune_commands(tool, tmp_path, opts) for name, opts in prune_bench.VARIANTS.items()}
    assert cmds["snapvault"] == [["sv", "-r", str(tmp_path), "forget", "--prune", "--max-repack", "100%"]]
    assert cmds["snapvault-unused-0"][0][-2:] == ["--max-unused", "0%"]
    assert cmds["snapvault-defaults"][0][-2:] == ["--max-repack", "10%"]
    assert set(prune_bench.NAMES) == set(prune_bench.VARIANTS)


def test_the_goal_rows_compare_each_column_with_the_faster_and_the_smaller_peer() -> None:
    lines = prune_bench.render_prune(
        _section(
            {
                "snapvault": _m(0.9, 350),
                "snapvault-unused-0": _m(1.0, 337),
                "snapvault-defaults": _m(0.7, 390),
                "restic": _m(3.0, 380),
                "borg": _m(2.0, 338),
            }
        )
    )
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| snapvault")}
    # Time against borg (the faster), size against borg (the smaller).
    assert "0.45x borg (0.90 s against 2.00)" in rows["snapvault"]
    assert "1.036x borg" in rows["snapvault"]
    assert rows["snapvault"].endswith("| no |")
    assert "0.50x borg" in rows["snapvault at 0% unused"]
    assert rows["snapvault at 0% unused"].endswith("| yes |")
    assert rows["snapvault at 10%"].endswith("| no |")


def test_no_peer_means_no_goal_rows() -> None:
    lines = prune_bench.render_prune(_section({"snapvault": _m(0.9, 350)}))
    assert not any("Against the goals" in line for line in lines)
