"""Which sections of the results come from an earlier run (bench/run.py).

A run that skips a section (``--skip-s3``, ``--skip-scale``, ``--skip-real``, ``--skip-prune``,
a scale size not in ``--scale-files``, or everything but the one of ``--only``) keeps that
section as the last results file has it, and lists it under ``carried`` with the date it was
measured: ``"scale 1,000,000 files (2026-12-05)"``, ``"real tree text (2026-12-05)"``.
"""

from __future__ import annotations

from typing import Any

from scale import scales_of


def carry_over(
    results: dict[str, Any],
    previous: dict[str, Any],
    *,
    skip_s3: bool,
    skip_prune: bool,
    sizes: list[int],
    real: list[str],
) -> None:
    """Sections this run does not measure come from the last run, each marked with its date."""
    for key, flag in (("s3", skip_s3), ("prune", skip_prune)):
        if flag and key in previous:
            results[key] = previous[key]
            date = previous[key].get("date") if key == "prune" else None
            if not date:  # s3 has no date of its own: the one it was carried with, or the run's
                marks = [c for c in previous.get("carried", []) if c.startswith(f"{key} (")]
                date = marks[0][len(key) + 2 : -1] if marks else previous.get("date", "?")
            carry(results, key, date)
    results["scales"] = {n: v for n, v in scales_of(previous).items() if int(n) not in sizes}
    for v in results["scales"].values():
        carry(results, f"scale {int(v['files']):,} files", v["date"])
    results["real"] = {n: v for n, v in previous.get("real", {}).items() if n not in real}
    for name, v in results["real"].items():
        carry(results, f"real tree {name}", v["date"])


def upgrade_scales(results: dict[str, Any]) -> None:
    """Results of earlier runs kept one scale size as ``scale``/``scale_files``: keep it per size."""
    scales = scales_of(results)
    for key in ("scale", "scale_files"):
        results.pop(key, None)
    if any(c.startswith("scale (") for c in results.get("carried", [])):
        uncarry(results, "scale")
        for v in scales.values():
            carry(results, f"scale {int(v['files']):,} files", v["date"])
    results["scales"] = scales


def carry(results: dict[str, Any], label: str, date: str) -> None:
    """Mark the section ``label`` as carried over from a run of ``date`` (once)."""
    uncarry(results, label)
    results.setdefault("carried", []).append(f"{label} ({date})")


def uncarry(results: dict[str, Any], label: str) -> None:
    """Unmark the section ``label`` (this run measured it)."""
    results["carried"] = [c for c in results.get("carried", []) if not c.startswith(f"{label} (")]
    if not results["carried"]:
        del results["carried"]
