"""``Repository.catalog`` on real backups: one row per entry per snapshot, the same entries a
walk of the disk finds, the snapshot choice of ``find``, a path inside the snapshots, lazy
iteration, and the pandas and pyarrow tables."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.maintenance.catalog import COLUMNS
from tests.conftest import write

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


@pytest.fixture
def made(local_repo: sv.Repository, tmp_path: Path) -> tuple[sv.Repository, Path, list[sv.Manifest]]:
    src = tmp_path / "data"
    write(src / "t.csv", "a,b\n1,2\n")
    write(src / "sub" / "big.bin", os.urandom(70_000))
    (src / "link").symlink_to("t.csv")
    os.utime(src / "t.csv", ns=(0, 1_700_000_000_123_456_789))
    eng = sv.Engine(local_repo)
    first = eng.backup([src], hostname="web", tags=["a"], now=T0)
    write(src / "sub" / "new.txt", "new")
    second = eng.backup([src], hostname="db", tags=["b"], now=T0 + timedelta(days=7))
    return local_repo, src, [first, second]


def _disk(src: Path) -> dict[str, tuple[str, int]]:
    found = {str(src): ("dir", 0)}
    for dirpath, dirs, files in os.walk(src):
        for n in dirs + files:
            p = Path(dirpath) / n
            kind = "symlink" if p.is_symlink() else "dir" if p.is_dir() else "file"
            found[str(p)] = (kind, p.lstat().st_size if kind == "file" else 0)
    return found


def test_rows_list_every_entry_of_every_snapshot_with_its_type_size_and_times(made) -> None:  # type: ignore[no-untyped-def]
    repo, src, (first, second) = made
    rows = list(repo.catalog())
    assert {r.snapshot for r in rows} == {first.id, second.id}
    latest = {r.path: (r.type, r.size) for r in rows if r.snapshot == second.id}
    # The snapshot also lists the directories above the source (as restic does), with size 0.
    assert {p: v for p, v in latest.items() if p.startswith(str(src))} == _disk(src)
    assert all(latest[str(a)] == ("dir", 0) for a in src.parents if str(a) != "/")
    older = {r.path for r in rows if r.snapshot == first.id}
    assert older == set(latest) - {f"{src}/sub/new.txt"}
    csv = next(r for r in rows if r.path == f"{src}/t.csv")
    assert csv.mtime == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert csv.snapshot_time == T0
    # Oldest snapshot first, each depth first in name order.
    assert [r.snapshot for r in rows] == sorted((r.snapshot for r in rows), key=[first.id, second.id].index)


def test_snapshots_are_chosen_as_find_chooses_them(made) -> None:  # type: ignore[no-untyped-def]
    repo, _, (first, second) = made
    assert {r.snapshot for r in repo.catalog([first.id[:8]])} == {first.id}
    assert {r.snapshot for r in repo.catalog(["latest"])} == {second.id}
    assert {r.snapshot for r in repo.catalog(hosts=["web"])} == {first.id}
    assert {r.snapshot for r in repo.catalog(tags=["b"])} == {second.id}
    assert repo.catalog(latest=1).snapshots == [first, second]  # one per host
    with pytest.raises(sv.SnapshotNotFound):
        repo.catalog(["ffffffff"])
    with pytest.raises(sv.ConfigError):
        repo.catalog("latest")  # type: ignore[arg-type]


def test_a_path_lists_only_what_is_below_it(made) -> None:  # type: ignore[no-untyped-def]
    repo, src, (first, second) = made
    rows = list(repo.catalog([second], path=f"{src}/sub"))
    assert sorted(r.path for r in rows) == [f"{src}/sub", f"{src}/sub/big.bin", f"{src}/sub/new.txt"]
    assert {r.path: r.size for r in rows}[f"{src}/sub/big.bin"] == 70_000
    with pytest.raises(sv.SnapshotNotFound):
        list(repo.catalog([first], path=f"{src}/sub/new.txt"))


def test_it_is_read_lazily_and_again_on_each_iteration(made) -> None:  # type: ignore[no-untyped-def]
    repo, src, (_, second) = made
    cat = repo.catalog([second])
    first_row = next(iter(cat))
    assert first_row.path == "/" + str(src).strip("/").split("/")[0]
    write(src / "later.txt", "x")
    sv.Engine(repo).backup([src], hostname="db", tags=["b"], now=T0 + timedelta(days=8))
    # The snapshots were chosen when the catalog was made; rows are read again each time.
    assert list(cat) == list(cat)
    assert {r.snapshot for r in cat} == {second.id}


def test_to_pandas_and_to_arrow_hold_the_same_rows(made) -> None:  # type: ignore[no-untyped-def]
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    repo, _src, (_first, _second) = made
    cat = repo.catalog()
    rows = list(cat)
    df = cat.to_pandas()
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == len(rows)
    assert df["size"].sum() == sum(r.size for r in rows)
    assert str(df["mtime"].dt.tz) == "UTC"
    assert str(df["snapshot_time"].dt.tz) == "UTC"
    growth = df.groupby("snapshot_time")["size"].sum()
    assert list(growth.index) == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(days=7))]
    assert growth.iloc[1] - growth.iloc[0] == 3  # new.txt
    table = cat.to_arrow()
    assert table.column_names == list(COLUMNS)
    assert table.num_rows == len(rows)
    assert table.column("path").to_pylist() == [r.path for r in rows]
    assert table.column("mtime").to_pylist() == [r.mtime for r in rows]
    assert table.to_pandas()["size"].tolist() == df["size"].tolist()


def test_an_empty_choice_gives_empty_tables(made) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    repo = made[0]
    cat = repo.catalog(hosts=["nobody"])
    assert list(cat) == []
    assert len(cat.to_pandas()) == 0
    assert cat.to_arrow().num_rows == 0
    assert list(cat.to_pandas().columns) == list(COLUMNS)
