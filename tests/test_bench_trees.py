"""The trees of bench/run.py's scale and real-tree sections, at tiny sizes: the scale tree's wide
and deep parts, the text tree's sizes and text, the change set, the cache that keeps generated
trees between runs, and the "Against the targets" rows computed from results.

bench/ is not a package: its modules are loaded by path under private names (as in
tests/test_prune_acceptance.py), with bench/ on ``sys.path`` only while they load, since they
import each other by plain name; the plain-named copies are dropped again afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(module: str) -> ModuleType:
    name = f"_snapvault_bench_{module}"
    before = set(sys.modules)
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{module}.py")
        assert spec is not None
        assert spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded  # dataclasses look their module up while the class is built
        spec.loader.exec_module(loaded)
    finally:
        sys.path.remove(str(BENCH))
        for other in set(sys.modules) - before - {name}:
            if str(getattr(sys.modules[other], "__file__", "") or "").startswith(str(BENCH)):
                del sys.modules[other]
    return loaded


trees = _load("trees")
targets = _load("targets")
carry = _load("carry")


def _digest(root: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in trees.listing(root)}


def _built_twice(make: Any, tmp_path: Path, files: int) -> list[str]:
    """Build a tree twice, check that both builds are the same, and list the first."""
    make(tmp_path / "a", files)
    make(tmp_path / "b", files)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    names: list[str] = trees.listing(tmp_path / "a")
    assert len(names) == files
    return names


def test_scale_tree_is_half_wide_half_deep_and_deterministic(tmp_path: Path) -> None:
    names = _built_twice(trees.make_scale_tree, tmp_path, 2000)
    wide = [n for n in names if n.startswith("wide/")]
    deep = [n for n in names if n.startswith("deep/")]
    assert len(wide) == len(deep) == 1000
    assert all(n.count("/") == 1 for n in wide)
    # 100 files a directory, each directory one level below the one before in its chain of 40.
    dirs = sorted({n.rsplit("/", 1)[0] for n in deep}, key=len)
    assert len(dirs) == 10
    assert all(sum(n.startswith(d + "/") and n.count("/") == d.count("/") + 1 for n in deep) == 100 for d in dirs)
    assert [d.count("/") for d in dirs] == list(range(2, 12))
    assert all(dirs[i].startswith(dirs[i - 1] + "/") for i in range(1, len(dirs)))
    sizes = [(tmp_path / "a" / n).stat().st_size for n in names]
    assert min(sizes) >= 1024
    assert max(sizes) <= 4096


def test_a_wide_half_over_the_directory_width_is_spread_over_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 1M tree's wide half (500,000 files) in directories of 100,000: here 1,000 files in
    # directories of 300. The contents are the ones one wide directory would hold.
    flat = _built_twice(trees.make_scale_tree, tmp_path / "flat", 2000)
    monkeypatch.setattr(trees, "WIDE_MAX", 300)
    split = _built_twice(trees.make_scale_tree, tmp_path / "split", 2000)
    wide = [n for n in split if n.startswith("wide/")]
    assert sorted({n.split("/")[1] for n in wide}) == ["w00", "w01", "w02", "w03"]
    assert [sum(n.startswith(f"wide/w0{k}/") for n in wide) for k in range(4)] == [300, 300, 300, 100]
    moved = {n.replace("wide/", "", 1).split("/", 1)[-1] for n in wide}
    assert moved == {n.split("/", 1)[1] for n in flat if n.startswith("wide/")}
    for n in wide:
        original = "wide/" + n.split("/")[-1]
        assert (tmp_path / "split" / "a" / n).read_bytes() == (tmp_path / "flat" / "a" / original).read_bytes()


def test_text_tree_sizes_layout_text_and_determinism(tmp_path: Path) -> None:
    names = _built_twice(trees.make_text_tree, tmp_path, 400)
    flat = [n for n in names if n.startswith("flat/")]
    deep = [n for n in names if n.startswith("deep/")]
    assert len(flat) == len(deep) == 200
    assert {n.rsplit("/", 1)[0] for n in flat} == {"flat/g000"}
    # Six directory levels below deep/, at most 50 files in each.
    assert {n.count("/") for n in deep} == {1 + trees.TEXT_DEPTH}
    per_dir: dict[str, int] = {}
    for n in deep:
        per_dir[n.rsplit("/", 1)[0]] = per_dir.get(n.rsplit("/", 1)[0], 0) + 1
    assert max(per_dir.values()) <= trees.TEXT_LEAF
    assert len(per_dir) == 4
    blobs = [(tmp_path / "a" / n).read_bytes() for n in names]
    assert min(map(len, blobs)) >= 1024
    assert max(map(len, blobs)) <= 8192
    assert len({len(b) for b in blobs}) > 100  # sizes spread over the range, not one size
    for blob in blobs:
        text = blob.decode("ascii")
        assert text.endswith("\n")
        assert text.count("\n") >= 10
        assert text.count(" ") > len(text) / 20
    # Words and lines compress the way text does; random bytes would not shrink at all.
    joined = b"".join(blobs)
    assert len(zlib.compress(joined, 6)) < 0.6 * len(joined)
    assert len(set(blobs)) == len(blobs)


def test_change_set_counts_and_determinism(tmp_path: Path) -> None:
    trees.make_text_tree(tmp_path / "orig", 400)
    shutil.copytree(tmp_path / "orig", tmp_path / "a")
    shutil.copytree(tmp_path / "orig", tmp_path / "b")
    before = _digest(tmp_path / "orig")
    change = trees.apply_changes(tmp_path / "a")
    assert change == trees.apply_changes(tmp_path / "b")
    assert (change.edited, change.deleted, change.added) == (12, 4, 4)
    after = _digest(tmp_path / "a")
    assert after == _digest(tmp_path / "b")
    gone = set(before) - set(after)
    new = set(after) - set(before)
    edited = {n for n in set(before) & set(after) if before[n] != after[n]}
    assert len(gone) == change.deleted
    assert len(new) == change.added
    assert all(n.startswith(trees.ADDED_DIR + "/") for n in new)
    assert len(edited) == change.edited
    for n in edited:
        old, now = (tmp_path / "orig" / n).read_bytes(), (tmp_path / "a" / n).read_bytes()
        assert b"# changed by the benchmark" in now
        assert len(now) > len(old)
    for n in new:
        assert 1024 <= (tmp_path / "a" / n).stat().st_size <= 8192
    # Another seed picks other files.
    shutil.copytree(tmp_path / "orig", tmp_path / "c")
    trees.apply_changes(tmp_path / "c", seed=1)
    assert _digest(tmp_path / "c") != after


def test_cache_reuses_a_tree_while_the_parameters_match(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = trees.scale_tree(cache, 200)
    marker = cache / "scale-200" / "marker.json"
    assert marker.exists()
    assert len(trees.listing(first)) == 200
    # A file dropped into the cached tree survives a reuse: the tree was not built again.
    (first / "kept").write_text("x")
    assert trees.scale_tree(cache, 200) == first
    assert (first / "kept").exists()
    # Other parameters are another tree; this one stays.
    other = trees.scale_tree(cache, 300)
    assert other != first
    assert len(trees.listing(other)) == 300
    assert (first / "kept").exists()


def test_cache_rebuilds_when_the_marker_differs_or_a_build_stopped(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    builds: list[Path] = []

    def build(root: Path) -> None:
        builds.append(root)
        trees.make_text_tree(root, 20)

    tree = trees.cached_tree(cache, "t", {"generator": "text", "version": 1}, build)
    (tree / "kept").write_text("x")
    assert trees.cached_tree(cache, "t", {"generator": "text", "version": 1}, build) == tree
    assert len(builds) == 1
    # A new generator version: built again, from nothing.
    trees.cached_tree(cache, "t", {"generator": "text", "version": 2}, build)
    assert len(builds) == 2
    assert not (tree / "kept").exists()
    assert len(trees.listing(tree)) == 20

    def broken(root: Path) -> None:
        root.mkdir(parents=True)
        (root / "half").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trees.cached_tree(cache, "t", {"generator": "text", "version": 3}, broken)
    assert not (cache / "t" / "marker.json").exists()
    # Asked again with the parameters of the tree it had, it builds: the stopped build removed it.
    trees.cached_tree(cache, "t", {"generator": "text", "version": 2}, build)
    assert len(builds) == 3
    assert len(trees.listing(tree)) == 20
    assert not (cache / "t" / "tree.partial").exists()


def test_copy_site_packages_sample_spreads_over_the_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for pkg in ("a", "b", "c", "d"):
        (src / pkg).mkdir(parents=True)
        for i in range(25):
            (src / pkg / f"m{i:02d}.py").write_text(f"x = {i}\n")
    trees.copy_site_packages(tmp_path / "some", 8, src=src)
    got = trees.listing(tmp_path / "some")
    assert len(got) == 8
    assert {n.split("/")[0] for n in got} == {"a", "b", "c", "d"}
    trees.copy_site_packages(tmp_path / "all", src=src)
    assert _digest(tmp_path / "all") == _digest(src)


def _tools(sv: float, restic: float, borg: float, key: str) -> dict[str, dict[str, float]]:
    return {"snapvault": {key: sv}, "restic": {key: restic}, "borg": {key: borg}}


def _row(rows: list[tuple[str, ...]], label: str) -> tuple[str, ...]:
    return next(r for r in rows if r[0] == label)


def test_targets_against_the_faster_peer() -> None:
    n = 1_000_000
    results: dict[str, Any] = {
        "date": "2026-12-05",
        "scales": {
            "200000": {"date": "d1", "files": 200_000, "tools": _tools(4.0, 10.0, 8.0, "first")},
            "1000000": {
                "date": "d2",
                "files": n,
                "tools": {
                    t: {"rebackup": s, "rebackup_rss": b * n / 1024}
                    for t, s, b in (("snapvault", 6.0, 250), ("restic", 10.0, 400), ("borg", 20.0, 260))
                },
            },
        },
        "real": {
            "text": {
                "date": "d3",
                "cp_a": 2.0,
                "cp_a_runs": [2.0, 4.0],
                "runs": {"snapvault": [{"restore": 1.0}, {"restore": 2.0}]},
                "medians": {
                    t: {"first": f, "rebackup": 1.0, "changed": 1.0, "restore": r, "first_rss": m}
                    for t, f, r, m in (
                        ("snapvault", 1, 1.5, 90_000),
                        ("restic", 3, 3, 80_000),
                        ("borg", 2, 2.5, 100_000),
                    )
                },
            }
        },
    }
    rows = targets.target_rows(results)
    first = _row(rows, "200k small files, first backup")
    assert first[2].startswith("0.50x borg")
    assert first[3:] == ("met", "d1")
    assert _row(rows, "200k small files, unchanged re-backup")[2:4] == ("not measured", "-")
    assert _row(rows, "1,000,000 files, unchanged re-backup")[2:4] == (
        "0.60x restic (6.00 s against 10.00 s)",
        "not met",
    )
    assert _row(rows, "peak RSS per file at 1M files, re-backup")[2:4] == ("250 B (borg 260 B, 0.96x)", "met")
    assert _row(rows, "shared datasets: v2 (changed) backup")[3] == "-"
    assert _row(rows, "text: first backup")[2:4] == ("0.50x borg (1.00 s against 2.00 s)", "met")
    assert _row(rows, "text: unchanged re-backup")[3] == "not met"
    restore = _row(rows, "text: restore")
    assert restore[2] == "0.60x borg (1.50 s against 2.50 s); 0.75x `cp -a` (2.00 s); per repetition 0.50, 0.50"
    assert restore[3] == "met"
    assert _row(rows, "text: first backup peak RSS")[2:4] == ("0.90x (88 MiB against 98)", "met")
    # borg's RSS per file below snapvault's misses the target even under 300 B.
    results["scales"]["1000000"]["tools"]["borg"]["rebackup_rss"] = 200 * n / 1024
    assert _row(targets.target_rows(results), "peak RSS per file at 1M files, re-backup")[3] == "not met"


def test_carry_over_keeps_skipped_sections_with_their_dates() -> None:
    previous: dict[str, Any] = {
        "date": "2026-12-03",
        "scale": {"snapvault": {"first": 1.0}},
        "scale_files": 200_000,
        "carried": ["s3 (2026-11-26)", "scale (2026-11-26)"],
        "s3": {"snapvault": {}},
        "prune": {"date": "2026-12-04"},
        "real": {"text": {"date": "2026-12-01"}, "site-packages": {"date": "2026-12-02"}},
    }
    results: dict[str, Any] = {"date": "2026-12-05"}
    carry.carry_over(results, previous, skip_s3=True, skip_prune=True, sizes=[1_000_000], real=["text"])
    assert results["scales"] == {"200000": {"date": "2026-11-26", "files": 200_000, "tools": previous["scale"]}}
    assert set(results["real"]) == {"site-packages"}
    assert results["carried"] == [
        "s3 (2026-11-26)",
        "prune (2026-12-04)",
        "scale 200,000 files (2026-11-26)",
        "real tree site-packages (2026-12-02)",
    ]
    carry.upgrade_scales(previous)
    assert "scale" not in previous
    assert previous["carried"] == ["s3 (2026-11-26)", "scale 200,000 files (2026-11-26)"]
