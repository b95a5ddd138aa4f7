"""The blob index: serialised form and the in-memory map."""

from __future__ import annotations

import random
import struct
import threading

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.errors import IntegrityError
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import MAX_INDEX, BlobLocation, Index, decode_index, encode_index
from snapvault.pipeline.pack import PackEntry

u32 = st.integers(0, 2**32 - 1)
ids = st.binary(min_size=32, max_size=32)
entries = st.builds(PackEntry, st.sampled_from(list(BlobType)), ids, u32, u32, u32)
# A writer lists each pack once and each blob once per file (the decoder refuses repeats).
packs = st.lists(
    st.tuples(ids, st.lists(entries, max_size=8, unique_by=lambda e: e.id)), max_size=8, unique_by=lambda t: t[0]
).filter(lambda p: len({e.id for _, es in p for e in es}) == sum(len(es) for _, es in p))


def raw_index(p: list[tuple[bytes, list[PackEntry]]]) -> bytes:
    return zstandard.ZstdDecompressor().decompress(encode_index(p), max_output_size=1 << 30)


def compress(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(raw)


SAMPLE = [
    (b"P" * 32, [PackEntry(BlobType.DATA, b"a" * 32, 0, 10, 20), PackEntry(BlobType.TREE, b"b" * 32, 10, 5, 3)]),
    (b"Q" * 32, [PackEntry(BlobType.DATA, b"c" * 32, 0, 7, 7)]),
]


# -- serialised form -------------------------------------------------------------------------


@settings(max_examples=150)
@given(p=packs)
def test_encode_decode_round_trip(p: list[tuple[bytes, list[PackEntry]]]) -> None:
    decoded = decode_index(encode_index(p))
    assert decoded == p
    for (_, got), (_, want) in zip(decoded, p, strict=True):
        assert all(isinstance(e.type, BlobType) for e in got)
        assert [e.type for e in got] == [e.type for e in want]


def test_encode_accepts_any_iterable_and_empty() -> None:
    assert decode_index(encode_index([])) == []
    assert decode_index(encode_index(iter(SAMPLE))) == SAMPLE
    assert decode_index(encode_index([(b"E" * 32, [])])) == [(b"E" * 32, [])]


def test_a_pack_or_a_blob_listed_twice_in_one_file_is_refused() -> None:
    (pid, es), (qid, fs) = SAMPLE
    with pytest.raises(IntegrityError, match="lists pack"):
        decode_index(encode_index([(pid, es), (pid, fs)]))
    with pytest.raises(IntegrityError, match="lists blob"):
        decode_index(encode_index([(pid, es), (qid, [es[0]])]))
    with pytest.raises(IntegrityError, match="lists blob"):
        decode_index(encode_index([(pid, [es[0], es[0]])]))


def test_a_frame_must_declare_its_size_within_the_limit_before_it_is_decompressed() -> None:
    raw = raw_index(SAMPLE)
    undeclared = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    with pytest.raises(IntegrityError, match="does not declare its size"):
        decode_index(undeclared)
    # A 32 KiB file of zeros that would decompress to a gigabyte: refused on its declared size.
    bomb = zstandard.ZstdCompressor(level=19).compress(b"SVI1" + bytes((1 << 30) - 4))
    assert len(bomb) < 64 << 10
    with pytest.raises(IntegrityError, match="over the format's limit"):
        decode_index(bomb)
    just_over = zstandard.ZstdCompressor().compress(bytes(MAX_INDEX + 1))
    with pytest.raises(IntegrityError, match="over the format's limit"):
        decode_index(just_over)


def test_a_second_frame_after_the_first_is_refused() -> None:
    data = encode_index(SAMPLE)
    with pytest.raises(IntegrityError):
        decode_index(data + data)


def test_raw_layout() -> None:
    raw = raw_index(SAMPLE)
    assert raw[:4] == b"SVI1"
    assert struct.unpack_from("<I", raw, 4) == (2,)
    assert raw[8:40] == b"P" * 32
    assert len(raw) == 8 + 2 * (32 + 4) + 3 * (1 + 32 + 12)


@given(data=st.binary(max_size=200))
def test_garbage_fails(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_index(data)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"SVI",
        b"SVI2\x00\x00\x00\x00",
        b"XXXX\x00\x00\x00\x00",
        b"SVI1",
        b"SVI1\x01\x00\x00\x00",  # one pack announced, none present
        b"SVI1\xff\xff\xff\xff",
        b"SVI1\x00\x00\x00\x00\x00",  # trailing byte
    ],
)
def test_malformed_raw_index_fails(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_index(compress(raw))


@given(cut=st.integers(1, 10_000))
def test_truncated_raw_index_fails(cut: int) -> None:
    raw = raw_index(SAMPLE)
    n = len(raw) - 1 - (cut - 1) % len(raw)
    with pytest.raises(IntegrityError):
        decode_index(compress(raw[:n]))


@given(extra=st.binary(min_size=1, max_size=50))
def test_trailing_bytes_fail(extra: bytes) -> None:
    with pytest.raises(IntegrityError, match="trailing"):
        decode_index(compress(raw_index(SAMPLE) + extra))


@pytest.mark.parametrize("bad_type", [2, 7, 255])
def test_unknown_blob_type_fails(bad_type: int) -> None:
    raw = bytearray(raw_index(SAMPLE))
    first_entry = 8 + 32 + 4
    assert raw[first_entry] == 0
    raw[first_entry] = bad_type
    with pytest.raises(IntegrityError):
        decode_index(compress(bytes(raw)))


def test_inflated_entry_count_fails() -> None:
    raw = bytearray(raw_index(SAMPLE))
    struct.pack_into("<I", raw, 8 + 32, 1000)
    with pytest.raises(IntegrityError):
        decode_index(compress(bytes(raw)))


@given(cut=st.integers(1, 10_000))
def test_truncated_compressed_index_fails(cut: int) -> None:
    data = encode_index(SAMPLE)
    n = len(data) - 1 - (cut - 1) % len(data)
    with pytest.raises(IntegrityError):
        decode_index(data[:n])


# -- the in-memory map -----------------------------------------------------------------------


def test_index_lookup() -> None:
    idx = Index()
    assert len(idx) == 0
    assert idx.packs == frozenset()
    for pid, es in SAMPLE:
        idx.add_pack(pid, es)
    assert len(idx) == 3
    assert b"a" * 32 in idx
    assert b"z" * 32 not in idx
    assert "a" * 32 not in idx
    assert idx.get(b"b" * 32) == BlobLocation(b"P" * 32, BlobType.TREE, 10, 5, 3)
    assert idx.get(b"c" * 32) == BlobLocation(b"Q" * 32, BlobType.DATA, 0, 7, 7)
    assert idx.get(b"z" * 32) is None
    assert idx.packs == {b"P" * 32, b"Q" * 32}
    assert dict(idx.items()) == {
        b"a" * 32: BlobLocation(b"P" * 32, BlobType.DATA, 0, 10, 20),
        b"b" * 32: BlobLocation(b"P" * 32, BlobType.TREE, 10, 5, 3),
        b"c" * 32: BlobLocation(b"Q" * 32, BlobType.DATA, 0, 7, 7),
    }


def test_duplicates_keep_the_first_location() -> None:
    idx = Index()
    bid = b"d" * 32
    idx.add_pack(b"1" * 32, [PackEntry(BlobType.DATA, bid, 0, 10, 10), PackEntry(BlobType.DATA, bid, 10, 11, 11)])
    idx.add_pack(b"2" * 32, [PackEntry(BlobType.DATA, bid, 99, 12, 12)])
    assert len(idx) == 1
    assert idx.get(bid) == BlobLocation(b"1" * 32, BlobType.DATA, 0, 10, 10)
    # The pack that only held duplicates is still known (it exists in the store).
    assert idx.packs == {b"1" * 32, b"2" * 32}


def test_packs_with_no_entries_are_known_and_packs_is_a_snapshot() -> None:
    idx = Index()
    idx.add_pack(b"E" * 32, [])
    before = idx.packs
    assert before == {b"E" * 32}
    assert len(idx) == 0
    idx.add_pack(b"F" * 32, iter([PackEntry(BlobType.DATA, b"x" * 32, 0, 1, 1)]))
    assert before == {b"E" * 32}
    assert idx.packs == {b"E" * 32, b"F" * 32}
    assert isinstance(idx.packs, frozenset)


@settings(max_examples=100)
@given(p=packs)
def test_index_matches_a_first_wins_model(p: list[tuple[bytes, list[PackEntry]]]) -> None:
    model: dict[bytes, BlobLocation] = {}
    for pid, es in p:
        for e in es:
            model.setdefault(e.id, BlobLocation(pid, e.type, e.offset, e.length, e.raw_length))
    idx = Index()
    for pid, es in decode_index(encode_index(p)):
        idx.add_pack(pid, es)
    assert dict(idx.items()) == model
    assert len(idx) == len(model)
    assert idx.packs == {pid for pid, _ in p}
    for bid, loc in model.items():
        assert bid in idx
        assert idx.get(bid) == loc


@pytest.mark.parametrize("field", ["offset", "length", "raw_length"])
@pytest.mark.parametrize("value", [2**32, -1])
def test_a_location_beyond_the_formats_u32_fields_is_refused(field: str, value: int) -> None:
    # Locations are packed into bit fields; a value that does not fit must not spill into
    # its neighbour and silently point somewhere else.
    fields = {"offset": 0, "length": 1, "raw_length": 1, field: value}
    idx = Index()
    with pytest.raises(IntegrityError, match="out of range"):
        idx.add_pack(b"P" * 32, [PackEntry(BlobType.DATA, b"a" * 32, **fields)])
    assert b"a" * 32 not in idx


def test_locations_come_back_with_their_blob_type() -> None:
    idx = Index()
    for pid, es in SAMPLE:
        idx.add_pack(pid, es)
    loc = idx.get(b"b" * 32)
    assert loc == BlobLocation(b"P" * 32, BlobType.TREE, 10, 5, 3)
    assert loc is not None
    assert loc.type is BlobType.TREE


def test_the_table_grows_through_many_packs_and_keeps_every_location() -> None:
    # Thousands of blobs in small packs make the slot table grow many times (from 16 slots);
    # every blob must come back with its own location afterwards, and IDs never added not at all.
    rng = random.Random(15)
    idx = Index()
    model: dict[bytes, BlobLocation] = {}
    for _p in range(300):
        pid = rng.randbytes(32)
        es = [PackEntry(BlobType.DATA, rng.randbytes(32), i * 7, i + 1, i + 2) for i in range(rng.randint(0, 40))]
        idx.add_pack(pid, es)
        model.update((e.id, BlobLocation(pid, e.type, e.offset, e.length, e.raw_length)) for e in es)
    assert len(idx) == len(model) > 5000
    assert all(idx.get(bid) == loc for bid, loc in model.items())
    assert dict(idx.items()) == model
    assert not any(rng.randbytes(32) in idx for _ in range(2000))


def test_keys_of_another_length_or_type_are_not_found() -> None:
    idx = Index()
    bid = b"k" * 32
    idx.add_pack(b"P" * 32, [PackEntry(BlobType.DATA, bid, 0, 1, 1)])
    # A longer key starting with a stored ID must not match it (nor run into its location).
    for other in (bid + b"\0", bid[:31], bytearray(bid), memoryview(bid), None, 5):
        assert other not in idx
    assert idx.get(bid + b"x") is None
    assert not idx.reusable(bid[:16])
    with pytest.raises(IntegrityError, match="not 32 bytes"):
        idx.add_pack(b"Q" * 32, [PackEntry(BlobType.DATA, b"short", 0, 1, 1)])


def test_a_copy_outside_the_marked_packs_displaces_the_marked_one() -> None:
    marked, kept = b"M" * 32, b"K" * 32
    idx = Index(avoid=frozenset({marked}))
    bid = b"b" * 32
    idx.add_pack(marked, [PackEntry(BlobType.DATA, bid, 0, 5, 5)])
    assert bid in idx
    assert not idx.reusable(bid)
    idx.add_pack(kept, [PackEntry(BlobType.DATA, bid, 40, 6, 6)])
    assert idx.get(bid) == BlobLocation(kept, BlobType.DATA, 40, 6, 6)
    assert idx.reusable(bid)
    assert len(idx) == 1


def test_readers_on_other_threads_see_every_blob_added_before_they_look() -> None:
    # Readers take no lock: while one thread adds packs (growing the table), lookups of
    # blobs added earlier must always succeed.
    idx = Index()
    rng = random.Random(7)
    batches = [[PackEntry(BlobType.DATA, rng.randbytes(32), 0, 1, 1) for _ in range(50)] for _ in range(200)]
    done = threading.Event()
    failures: list[bytes] = []
    published: list[bytes] = []

    def read() -> None:
        while not done.is_set():
            for bid in list(published):
                if bid not in idx:
                    failures.append(bid)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for i, es in enumerate(batches):
        idx.add_pack(bytes([i % 256]) * 31 + bytes([i // 256]), es)
        published.extend(e.id for e in es)
    done.set()
    for t in readers:
        t.join()
    assert failures == []
    assert len(idx) == 10_000
