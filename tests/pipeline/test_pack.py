"""Pack files: writing, parsing from the whole pack or its tail, and refusing damage."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.errors import IntegrityError
from snapvault.pipeline.blob import open_blob, seal_blob
from snapvault.pipeline.codecs import Zstd
from snapvault.pipeline.crypto import AEADSealer, PlainSealer, make_sealer
from snapvault.pipeline.ids import BlobType, blob_id, object_hash
from snapvault.pipeline.pack import (
    HEADER_AD,
    MAX_HEADER,
    PACK_MAGIC,
    TRAILER_SIZE,
    PackEntry,
    PackWriter,
    blob_ad,
    parse_pack,
    read_header,
)

ENC_KEY = bytes(range(32))
ID_KEY = bytes(range(64, 96))
SEALERS = ["aes-256-gcm", "chacha20-poly1305", "none"]
ENTRY = struct.Struct("<B32sIII")
COUNT = struct.Struct("<BI")

# Fixed contents (no accidental b"SVP1" inside, which a plain pack would show in clear).
BLOBS = [
    (BlobType.DATA, b"first blob " * 20),
    (BlobType.TREE, b'{"nodes":[],"v":1}'),
    (BlobType.DATA, bytes(range(256)) * 3),
    (BlobType.DATA, b"x"),
]


def fresh_random() -> Callable[[int], bytes]:
    """Distinct, repeatable "random" bytes for every call."""
    c = itertools.count(1)

    def rnd(n: int) -> bytes:
        return next(c).to_bytes(4, "big") * (n // 4) + bytes(n % 4)

    return rnd


@dataclass
class Built:
    sealer: AEADSealer | PlainSealer
    pack_id: bytes
    data: bytes
    entries: list[PackEntry]
    plaintexts: list[bytes]


def build(name: str, blobs: list[tuple[BlobType, bytes]] = BLOBS) -> Built:
    s = make_sealer(name, ENC_KEY)
    rnd = fresh_random()
    w = PackWriter()
    assert len(w) == 0
    assert w.count == 0
    for btype, data in blobs:
        bid = blob_id(ID_KEY, data)
        w.add(btype, bid, seal_blob(s, Zstd(3), btype, bid, data, rnd(28)), len(data))
    body_len = len(w)
    assert w.count == len(blobs)
    pack_id, data, entries = w.finish(s, rnd)
    assert len(data) > body_len
    return Built(s, pack_id, data, list(entries), [d for _, d in blobs])


def header_region(b: Built) -> int:
    """Length of header plus trailer at the end of the pack."""
    (hlen,) = struct.unpack("<I", b.data[-TRAILER_SIZE:-4])
    return hlen + TRAILER_SIZE


@pytest.fixture(params=SEALERS)
def built(request: pytest.FixtureRequest) -> Built:
    return build(request.param)


# -- round trip ------------------------------------------------------------------------------


def test_parse_returns_exactly_the_entries_written_and_every_blob_opens(built: Built) -> None:
    parsed = parse_pack(built.sealer, built.data)
    assert parsed == built.entries
    assert len(parsed) == len(BLOBS)
    offset = 0
    for e, (btype, plain) in zip(parsed, BLOBS, strict=True):
        assert e.type == btype
        assert e.id == blob_id(ID_KEY, plain)
        assert e.offset == offset
        assert e.raw_length == len(plain)
        offset += e.length
        sealed = built.data[e.offset : e.offset + e.length]
        assert open_blob(built.sealer, ID_KEY, e.type, e.id, sealed, e.raw_length) == plain
    assert offset + header_region(built) == len(built.data)


def test_pack_layout_and_id(built: Built) -> None:
    assert built.data.endswith(PACK_MAGIC)
    assert TRAILER_SIZE == 8
    assert built.pack_id == object_hash(built.data)
    assert len(built.pack_id) == 32


def test_pack_id_changes_with_content() -> None:
    a = build("aes-256-gcm")
    b = build("aes-256-gcm", [*BLOBS, (BlobType.DATA, b"one more")])
    assert a.pack_id != b.pack_id


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(SEALERS),
    blobs=st.lists(st.tuples(st.sampled_from(list(BlobType)), st.binary(max_size=2000)), max_size=12),
)
def test_round_trip_any_blobs(name: str, blobs: list[tuple[BlobType, bytes]]) -> None:
    b = build(name, blobs)
    parsed = parse_pack(b.sealer, b.data)
    assert parsed == b.entries
    for e, (btype, plain) in zip(parsed, blobs, strict=True):
        assert e.type == btype
        assert open_blob(b.sealer, ID_KEY, btype, e.id, b.data[e.offset : e.offset + e.length], e.raw_length) == plain


def test_empty_pack(built: Built) -> None:
    b = build(built.sealer.name, [])
    assert parse_pack(b.sealer, b.data) == []
    assert b.data.endswith(PACK_MAGIC)


@settings(max_examples=30)
@given(name=st.sampled_from(SEALERS), extra=st.integers(0, 10_000))
def test_read_header_from_only_the_tail(name: str, extra: int) -> None:
    b = build(name)
    need = header_region(b)
    tail = b.data[-(need + min(extra, len(b.data) - need)) :]
    assert read_header(b.sealer, tail, len(b.data)) == b.entries
    assert read_header(b.sealer, memoryview(tail), len(b.data)) == b.entries


def test_read_header_with_a_tail_too_short_fails(built: Built) -> None:
    need = header_region(built)
    for n in (0, 1, TRAILER_SIZE, need - 1):
        with pytest.raises(IntegrityError):
            read_header(built.sealer, built.data[-n:] if n else b"", len(built.data))


def test_read_header_with_a_pack_size_too_small_fails(built: Built) -> None:
    # The entries would point past the end of the blob area.
    with pytest.raises(IntegrityError):
        read_header(built.sealer, built.data, len(built.data) - 1)


@pytest.mark.parametrize("name", SEALERS)
def test_wrong_key_fails(name: str) -> None:
    b = build(name)
    with pytest.raises(IntegrityError):
        parse_pack(make_sealer(name, bytes(32)), b.data)


def test_blob_ad_binds_type_and_id() -> None:
    bid = bytes(range(32))
    assert blob_ad(BlobType.DATA, bid) == b"\x00" + bid
    assert blob_ad(BlobType.TREE, bid) == b"\x01" + bid
    assert blob_ad(BlobType.DATA, bid) != blob_ad(BlobType.TREE, bid)


def test_a_damaged_blob_does_not_affect_the_header_or_other_blobs(built: Built) -> None:
    victim = built.entries[1]
    data = bytearray(built.data)
    data[victim.offset + victim.length // 2] ^= 0x40
    parsed = parse_pack(built.sealer, bytes(data))
    assert parsed == built.entries
    assert object_hash(bytes(data)) != built.pack_id
    for e, plain in zip(parsed, built.plaintexts, strict=True):
        sealed = bytes(data[e.offset : e.offset + e.length])
        if e == victim:
            with pytest.raises(IntegrityError):
                open_blob(built.sealer, ID_KEY, e.type, e.id, sealed, e.raw_length)
        else:
            assert open_blob(built.sealer, ID_KEY, e.type, e.id, sealed, e.raw_length) == plain


# -- damage to the header and trailer ------------------------------------------------------

packs = {name: build(name) for name in SEALERS}


@settings(max_examples=200)
@given(name=st.sampled_from(SEALERS), cut=st.integers(1, 100_000))
def test_truncated_pack_fails(name: str, cut: int) -> None:
    b = packs[name]
    n = len(b.data) - 1 - (cut - 1) % len(b.data)  # every length from 0 to len - 1
    with pytest.raises(IntegrityError):
        parse_pack(b.sealer, b.data[:n])


@settings(max_examples=100)
@given(name=st.sampled_from(SEALERS), drop=st.integers(1, 100_000))
def test_pack_missing_its_beginning_fails(name: str, drop: int) -> None:
    b = packs[name]
    drop = 1 + (drop - 1) % (len(b.data) - 1)
    with pytest.raises(IntegrityError):
        parse_pack(b.sealer, b.data[drop:])


@given(name=st.sampled_from(SEALERS), pos=st.integers(0, 3), value=st.integers(0, 255))
def test_garbled_trailer_magic_fails(name: str, pos: int, value: int) -> None:
    b = packs[name]
    data = bytearray(b.data)
    i = len(data) - 4 + pos
    if data[i] == value:
        value ^= 0xFF
    data[i] = value
    with pytest.raises(IntegrityError, match="magic"):
        parse_pack(b.sealer, bytes(data))


@settings(max_examples=200)
@given(name=st.sampled_from(SEALERS), hlen=st.integers(0, 2**32 - 1))
def test_garbled_header_length_fails(name: str, hlen: int) -> None:
    b = packs[name]
    real = header_region(b) - TRAILER_SIZE
    if hlen == real:
        hlen = real + 1
    data = b.data[:-TRAILER_SIZE] + struct.pack("<I4s", hlen, PACK_MAGIC)
    with pytest.raises(IntegrityError):
        parse_pack(b.sealer, data)


@settings(max_examples=300)
@given(name=st.sampled_from(SEALERS), back=st.integers(1, 10_000), bit=st.integers(0, 7))
def test_flipped_byte_in_header_or_trailer_fails(name: str, back: int, bit: int) -> None:
    b = packs[name]
    region = header_region(b)
    pos = len(b.data) - 1 - (back - 1) % region
    data = bytearray(b.data)
    data[pos] ^= 1 << bit
    with pytest.raises(IntegrityError):
        parse_pack(b.sealer, bytes(data))


def test_flipped_byte_at_every_header_position_fails() -> None:
    b = packs["none"]  # the plain header shows its fields in clear; a MAC must still catch each
    region = header_region(b)
    for pos in range(len(b.data) - region, len(b.data)):
        data = bytearray(b.data)
        data[pos] ^= 0x01
        with pytest.raises(IntegrityError):
            parse_pack(b.sealer, bytes(data))


# -- authentic but inconsistent headers (a buggy writer, or a forger holding the key) --------


def forge(name: str, body: bytes, plain_header: bytes) -> tuple[AEADSealer | PlainSealer, bytes]:
    s = make_sealer(name, ENC_KEY)
    header = s.seal(plain_header, HEADER_AD, random=bytes(28))
    return s, body + header + struct.pack("<I4s", len(header), PACK_MAGIC)


def entry(t: int, off: int, length: int, raw: int = 1) -> bytes:
    return ENTRY.pack(t, bytes(32), off, length, raw)


@pytest.mark.parametrize("name", SEALERS)
@pytest.mark.parametrize(
    ("plain_header", "why"),
    [
        (b"", "truncated"),
        (b"\x01\x00\x00", "truncated"),
        (COUNT.pack(2, 0), "version"),
        (COUNT.pack(0, 0), "version"),
        (COUNT.pack(1, 1), "entry count"),
        (COUNT.pack(1, 0) + entry(0, 0, 10), "entry count"),
        (COUNT.pack(1, 2) + entry(0, 0, 10), "entry count"),
        (COUNT.pack(1, 1) + entry(0, 0, 10) + b"\x00", "entry count"),
        (COUNT.pack(1, 1) + entry(2, 0, 10), "out of range"),
        (COUNT.pack(1, 1) + entry(255, 0, 10), "out of range"),
        (COUNT.pack(1, 1) + entry(0, 0, 101), "out of range"),
        (COUNT.pack(1, 1) + entry(0, 100, 1), "out of range"),
        (COUNT.pack(1, 2) + entry(0, 0, 50) + entry(1, 2**32 - 1, 1), "out of range"),
        # Overlapping, out of order, repeated, or shorter than any sealed blob can be.
        (COUNT.pack(1, 2) + entry(0, 0, 50) + entry(1, 49, 40), "out of range"),
        (COUNT.pack(1, 2) + entry(0, 50, 50) + entry(1, 0, 40), "out of range"),
        (COUNT.pack(1, 2) + entry(0, 0, 50) + entry(0, 0, 50), "out of range"),
        (COUNT.pack(1, 1) + entry(0, 0, 32), "out of range"),
    ],
)
def test_inconsistent_authentic_header_fails(name: str, plain_header: bytes, why: str) -> None:
    s, data = forge(name, bytes(100), plain_header)
    with pytest.raises(IntegrityError, match=why):
        parse_pack(s, data)


@pytest.mark.parametrize("name", SEALERS)
def test_consistent_forged_header_parses(name: str) -> None:
    # Control for the test above: the same construction with valid fields is accepted.
    s, data = forge(name, bytes(100), COUNT.pack(1, 2) + entry(0, 0, 60, 5) + entry(1, 60, 40, 7))
    got = parse_pack(s, data)
    assert [(e.type, e.offset, e.length, e.raw_length) for e in got] == [
        (BlobType.DATA, 0, 60, 5),
        (BlobType.TREE, 60, 40, 7),
    ]


def test_a_header_longer_than_the_limit_is_refused_before_it_is_opened() -> None:
    # Only the trailer is real: the refusal comes from the declared length alone.
    tail = bytes(64) + struct.pack("<I4s", MAX_HEADER + 1, PACK_MAGIC)
    with pytest.raises(IntegrityError, match="over the format's limit"):
        read_header(make_sealer("aes-256-gcm", ENC_KEY), tail, 1 << 40)


@pytest.mark.parametrize("name", SEALERS)
def test_header_sealed_with_other_ad_fails(name: str) -> None:
    s = make_sealer(name, ENC_KEY)
    header = s.seal(COUNT.pack(1, 0), b"snapvault index", random=bytes(28))
    data = header + struct.pack("<I4s", len(header), PACK_MAGIC)
    with pytest.raises(IntegrityError):
        parse_pack(s, data)


@settings(max_examples=200)
@given(
    name=st.sampled_from(SEALERS),
    body=st.binary(max_size=300),
    hlen=st.one_of(st.integers(0, 400), st.integers(0, 2**32 - 1)),
)
def test_arbitrary_bytes_with_a_valid_trailer_give_only_integrity_error(name: str, body: bytes, hlen: int) -> None:
    s = make_sealer(name, ENC_KEY)
    data = body + struct.pack("<I4s", hlen, PACK_MAGIC)
    with pytest.raises(IntegrityError):
        parse_pack(s, data)
