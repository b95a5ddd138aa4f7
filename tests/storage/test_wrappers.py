"""Store wrappers: read-only access and seeded fault injection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import fsspec
import pytest

from snapvault.errors import AccessDenied, ObjectNotFound, StorageError, TransientStorageError
from snapvault.storage import FaultyStore, ReadOnlyStore, RetryingStore, Store, StoreEntry, open_store


@pytest.fixture(params=["local", "memory"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "local":
        yield open_store(str(tmp_path / "store"))
        return
    url = f"memory://wrappers-{uuid.uuid4().hex}"
    yield open_store(url)
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


# -- ReadOnlyStore ---------------------------------------------------------------------------


def test_read_only_refuses_writes(inner: Store) -> None:
    inner.put_if_absent("existing", b"1")
    ro = ReadOnlyStore(inner)
    with pytest.raises(AccessDenied) as exc:
        ro.put_if_absent("new", b"2")
    assert isinstance(exc.value, PermissionError)
    assert isinstance(exc.value, StorageError)
    assert exc.value.key == "new"
    with pytest.raises(AccessDenied):
        ro.put_if_absent("existing", b"2")
    with pytest.raises(AccessDenied) as exc:
        ro.delete("existing")
    assert exc.value.key == "existing"
    with pytest.raises(AccessDenied):
        ro.delete("missing")
    # Nothing changed underneath.
    assert not inner.exists("new")
    assert inner.get("existing") == b"1"


def test_read_only_passes_reads_through(inner: Store) -> None:
    inner.put_if_absent("data/aa/x", b"hello world")
    inner.put_if_absent("data/bb/y", b"!")
    ro = ReadOnlyStore(inner)
    assert ro.get("data/aa/x") == b"hello world"
    assert ro.get_range("data/aa/x", 6, 100) == b"world"
    assert ro.size("data/aa/x") == 11
    assert ro.exists("data/aa/x")
    assert not ro.exists("data/aa/z")
    assert sorted(ro.list("data")) == sorted(inner.list("data"))
    assert {e.key for e in ro.list("")} == {"data/aa/x", "data/bb/y"}
    assert ro.url == inner.url
    # Errors of the inner store come through unchanged.
    with pytest.raises(ObjectNotFound):
        ro.get("missing")


def test_read_only_capabilities(inner: Store) -> None:
    ro = ReadOnlyStore(inner)
    assert ro.capabilities.read_only is True
    assert ro.capabilities.atomic_create == inner.capabilities.atomic_create
    assert ro.capabilities.ranged_reads == inner.capabilities.ranged_reads
    # The inner store's capabilities are not modified.
    assert inner.capabilities.read_only is False
    assert isinstance(ro, Store)


def test_read_only_sees_later_writes_to_the_inner_store(inner: Store) -> None:
    ro = ReadOnlyStore(inner)
    assert not ro.exists("later")
    inner.put_if_absent("later", b"x")
    assert ro.get("later") == b"x"


# -- FaultyStore -----------------------------------------------------------------------------


def test_faulty_without_faults_is_transparent(inner: Store) -> None:
    fs = FaultyStore(inner)
    for i in range(50):
        assert fs.put_if_absent(f"k{i}", bytes([i]))
    for i in range(50):
        assert fs.get(f"k{i}") == bytes([i])
        assert fs.get_range(f"k{i}", 0, 5) == bytes([i])
    assert fs.writes == 50
    assert isinstance(fs, Store)
    # Everything but the spool folder: wrappers see object bytes, so files never bypass them.
    assert fs.capabilities.spool_dir is None
    assert replace(fs.capabilities, spool_dir=inner.capabilities.spool_dir) == inner.capabilities


@pytest.mark.parametrize("n", [0, 1, 5])
def test_fail_writes_after(inner: Store, n: int) -> None:
    fs = FaultyStore(inner, fail_writes_after=n)
    for i in range(n):
        assert fs.put_if_absent(f"ok/{i}", b"x") is True
    for i in range(3):
        with pytest.raises(TransientStorageError) as exc:
            fs.put_if_absent(f"fail/{i}", b"x")
        assert exc.value.key == f"fail/{i}"
        assert isinstance(exc.value, StorageError)
    # The refused writes never reached the store; earlier ones did.
    assert {e.key for e in inner.list("")} == {f"ok/{i}" for i in range(n)}
    # Reads and deletes keep working: only writes "crash".
    if n:
        assert fs.get("ok/0") == b"x"
        fs.delete("ok/0")
        assert not inner.exists("ok/0")


def test_fail_writes_after_counts_refused_duplicates_as_writes(inner: Store) -> None:
    # A put that finds the object present is still a write attempt that succeeded.
    fs = FaultyStore(inner, fail_writes_after=2)
    assert fs.put_if_absent("a", b"1") is True
    assert fs.put_if_absent("a", b"1") is False
    with pytest.raises(TransientStorageError):
        fs.put_if_absent("b", b"2")


def test_transient_rate_zero_and_one(inner: Store) -> None:
    inner.put_if_absent("obj", b"payload")
    never = FaultyStore(inner, transient_rate=0.0, seed=1)
    for _ in range(100):
        assert never.get("obj") == b"payload"
    always = FaultyStore(inner, transient_rate=1.0, seed=1)
    for _ in range(20):
        with pytest.raises(TransientStorageError):
            always.get("obj")
        with pytest.raises(TransientStorageError):
            always.get_range("obj", 0, 3)
        with pytest.raises(TransientStorageError):
            always.put_if_absent("new", b"x")
        # Metadata operations and deletes fail the same way, and change nothing.
        with pytest.raises(TransientStorageError):
            always.exists("obj")
        with pytest.raises(TransientStorageError):
            always.size("obj")
        with pytest.raises(TransientStorageError):
            list(always.list(""))
        with pytest.raises(TransientStorageError) as exc:
            always.delete("obj")
        assert exc.value.key == "obj"
    assert not inner.exists("new")
    assert inner.get("obj") == b"payload"


def _pattern(store: Store, seed: int, rate: float, n: int = 200) -> list[bool]:
    fs = FaultyStore(store, transient_rate=rate, seed=seed)
    out = []
    for _ in range(n):
        try:
            fs.get("obj")
        except TransientStorageError:
            out.append(True)
        else:
            out.append(False)
    return out


def test_transient_failures_are_seeded_and_repeatable(inner: Store) -> None:
    inner.put_if_absent("obj", b"payload")
    a = _pattern(inner, seed=42, rate=0.3)
    assert a == _pattern(inner, seed=42, rate=0.3)
    assert a != _pattern(inner, seed=43, rate=0.3)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_transient_rate_is_roughly_honoured(inner: Store, rate: float) -> None:
    inner.put_if_absent("obj", b"payload")
    hits = sum(_pattern(inner, seed=7, rate=rate, n=2000))
    assert abs(hits / 2000 - rate) < 0.05


def test_transient_write_failure_writes_nothing(inner: Store) -> None:
    fs = FaultyStore(inner, transient_rate=0.5, seed=3)
    outcomes: dict[str, bool] = {}
    for i in range(100):
        key = f"k/{i}"
        try:
            fs.put_if_absent(key, b"x")
        except TransientStorageError:
            outcomes[key] = False
        else:
            outcomes[key] = True
    assert 10 < sum(outcomes.values()) < 90
    for key, ok in outcomes.items():
        assert inner.exists(key) == ok


def test_fail_writes_after_counts_only_successful_writes(inner: Store) -> None:
    # "Raise on every write after this many successful ones": writes refused by an injected
    # transient failure did not succeed, so they must not use up the budget.
    fs = FaultyStore(inner, fail_writes_after=5, transient_rate=0.5, seed=0)
    succeeded = 0
    for i in range(200):
        try:
            fs.put_if_absent(f"k/{i}", b"x")
        except TransientStorageError:
            continue
        succeeded += 1
    assert succeeded == 5
    assert len(list(inner.list("k"))) == 5


def _no_sleep(_: float) -> None:
    pass


def test_lost_response_lands_and_a_retry_finds_it(inner: Store) -> None:
    fs = FaultyStore(inner, fail_after_write_rate=1.0)
    with pytest.raises(TransientStorageError) as exc:
        fs.put_if_absent("k", b"landed")
    assert exc.value.key == "k"
    # The write happened: only its answer was lost.
    assert inner.get("k") == b"landed"
    # Retried, the create-only write reports "already there", which is the truth.
    retrying = RetryingStore(FaultyStore(inner, fail_after_write_rate=0.0), sleep=_no_sleep)
    assert retrying.put_if_absent("k", b"landed") is False


def _listing(store: Store, prefix: str = "") -> tuple[list[StoreEntry], bool]:
    """The entries a listing yields before it ends, and whether it ended in an error."""
    seen: list[StoreEntry] = []
    try:
        for entry in store.list(prefix):
            seen.append(entry)
    except TransientStorageError:
        return seen, True
    return seen, False


def _fill(store: Store, n: int, folder: str = "data") -> set[StoreEntry]:
    for i in range(n):
        store.put_if_absent(f"{folder}/{i:02d}", b"x" * (i + 1))
    return {StoreEntry(f"{folder}/{i:02d}", i + 1) for i in range(n)}


def test_torn_listing_yields_part_then_raises(inner: Store) -> None:
    full = _fill(inner, 12)
    fs = FaultyStore(inner, torn_list_rate=1.0, seed=5)
    cuts = set()
    for _ in range(40):
        seen, failed = _listing(fs, "data")
        assert failed, "a torn listing must not end as if it were complete"
        assert len(seen) < len(full)
        assert len(set(seen)) == len(seen)
        assert set(seen) <= full
        cuts.add(len(seen))
    # Cut at many points, from before the first entry on.
    assert 0 in cuts
    assert len(cuts) > 5
    assert fs.injected == 40
    # An empty listing torn is an error too.
    assert _listing(fs, "nothing-here") == ([], True)


def test_torn_listings_are_survived_by_retrying_whole_listings(inner: Store) -> None:
    full = _fill(inner, 12)
    fs = FaultyStore(inner, torn_list_rate=0.5, seed=9)
    retrying = RetryingStore(fs, attempts=20, sleep=_no_sleep)
    for _ in range(30):
        got = list(retrying.list("data"))
        # Started over after each break: every entry once, none repeated from a torn page.
        assert sorted(got) == sorted(full)
    assert retrying.retries == fs.injected > 5


def test_stale_listing_leaves_out_only_recent_writes(inner: Store) -> None:
    old = _fill(inner, 5, "old")
    fs = FaultyStore(inner, stale_list_rate=1.0, stale_window=4, seed=2)
    new = _fill(fs, 10, "new")
    recent = {e for e in new if e.key in {f"new/{i:02d}" for i in range(6, 10)}}
    left_out: set[StoreEntry] = set()
    for _ in range(30):
        seen, failed = _listing(fs)
        assert not failed, "a stale listing raises nothing"
        assert set(seen) <= old | new
        # Objects there before the wrapper, and writes older than the window, are listed.
        assert old | (new - recent) <= set(seen)
        left_out |= (old | new) - set(seen)
    # Each recent write goes missing from some listing, and is still stored all along.
    assert left_out == recent
    assert {e.key for e in inner.list("new")} == {e.key for e in new}
    # At rate zero nothing is left out.
    assert set(FaultyStore(inner, seed=2).list("")) == old | new


def test_draws_do_not_depend_on_the_order_of_calls(inner: Store) -> None:
    # Threads make their calls in no set order; the same calls must meet the same faults.
    keys = [f"k/{i}" for i in range(60)]
    for key in keys:
        inner.put_if_absent(key, b"0123456789")

    def faults(order: list[str], seed: int = 11) -> dict[str, list[str]]:
        fs = FaultyStore(inner, transient_rate=0.3, short_read_rate=0.3, seed=seed)
        out: dict[str, list[str]] = {k: [] for k in keys}
        for _ in range(3):
            for key in order:
                try:
                    data = fs.get_range(key, 0, 10)
                except TransientStorageError:
                    out[key].append("transient")
                else:
                    out[key].append("short" if len(data) < 10 else "ok")
        return out

    forward = faults(keys)
    assert forward == faults(keys[::-1])
    kinds = {k for outcomes in forward.values() for k in outcomes}
    assert kinds == {"transient", "short", "ok"}
    assert forward != faults(keys, seed=12)
