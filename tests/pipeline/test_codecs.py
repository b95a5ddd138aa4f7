"""Compression codecs: framing, the raw fallback, strict decoding, the JSON form and the table."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import pytest
import zstandard
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from snapvault.errors import ConfigError, IntegrityError
from snapvault.pipeline.codecs import (
    CODEC_TABLE,
    RETIRED_CODECS,
    Codec,
    NoCompression,
    Zstd,
    build_codec_table,
    codec_from_dict,
    decode,
    encode,
)

CODECS = [NoCompression(), Zstd(-7), Zstd(-1), Zstd(1), Zstd(3), Zstd(9), Zstd(19)]
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

codecs = st.sampled_from(CODECS)


def rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def text(n: int) -> bytes:
    words = [b"alpha", b"beta", b"gamma", b"delta", b"snap", b"vault", b"\n"]
    rng = random.Random(n)
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


# -- round trip ------------------------------------------------------------------------------


@settings(max_examples=200)
@given(codec=codecs, data=st.binary(max_size=8192))
def test_round_trip_any_bytes(codec: Codec, data: bytes) -> None:
    frame = encode(codec, data)
    assert frame[0] in (0, 1)
    assert decode(frame, max_size=len(data)) == data
    assert decode(memoryview(frame), max_size=len(data) + 100) == data


@settings(max_examples=40, deadline=None)
@given(codec=codecs, n=st.integers(0, 300_000), kind=st.sampled_from(["random", "text", "zeros"]))
def test_round_trip_large_and_compressible(codec: Codec, n: int, kind: str) -> None:
    data = {"random": rand(n, n), "text": text(n), "zeros": bytes(n)}[kind]
    frame = encode(codec, memoryview(data))
    assert decode(frame, max_size=n) == data


def test_wire_ids_are_stable() -> None:
    assert NoCompression.wire_id == 0
    assert Zstd.wire_id == 1


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@pytest.mark.parametrize("n", [0, 1, 100, 4096, 200_000])
def test_incompressible_data_is_stored_raw(codec: Codec, n: int) -> None:
    data = rand(n + 1, n)
    frame = encode(codec, data)
    assert frame[0] == 0
    assert frame[1:] == data


@pytest.mark.parametrize("level", [-7, -1, 1, 3, 9, 19])
@pytest.mark.parametrize("data", [b"a" * 10_000, text(50_000), bytes(300_000)], ids=["aaa", "text", "zeros"])
def test_compressible_data_is_compressed(level: int, data: bytes) -> None:
    frame = encode(Zstd(level), data)
    assert frame[0] == 1
    assert frame[1:5] == ZSTD_MAGIC
    assert len(frame) < len(data) * 0.7


def test_no_compression_keeps_even_compressible_data_raw() -> None:
    data = b"a" * 10_000
    assert encode(NoCompression(), data) == b"\x00" + data


def test_data_that_barely_shrinks_is_stored_raw() -> None:
    # Random bytes plus a little redundancy: zstd saves something, but less than 1/32.
    data = rand(42, 30_000) + bytes(1000)
    compressed = zstandard.ZstdCompressor(level=3).compress(data)
    assert len(compressed) < len(data), "premise: zstd does shrink it a little"
    assert len(compressed) > len(data) * (1 - 1 / 32), "premise: but by less than 1/32"
    assert encode(Zstd(3), data)[0] == 0


def test_encode_is_thread_safe_across_levels() -> None:
    inputs = [(Zstd(level), text(20_000 + i)) for i, level in enumerate([1, 3, 5, 9, -1, 19] * 8)]

    def work(item: tuple[Zstd, bytes]) -> bool:
        codec, data = item
        return all(decode(encode(codec, data), max_size=len(data)) == data for _ in range(5))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, inputs))


# -- decode refuses bad frames ---------------------------------------------------------------


def test_decode_refuses_empty_frame() -> None:
    with pytest.raises(IntegrityError):
        decode(b"", max_size=100)


@given(wire=st.integers(2, 255), body=st.binary(max_size=64))
def test_decode_refuses_unknown_wire_ids(wire: int, body: bytes) -> None:
    with pytest.raises(IntegrityError, match="wire ID"):
        decode(bytes([wire]) + body, max_size=1000)


@given(body=st.binary(max_size=200))
def test_decode_refuses_garbage_zstd(body: bytes) -> None:
    # Not a zstd frame, nor a skippable frame (magic 0x184D2A50..5F, little-endian).
    assume(not body.startswith(ZSTD_MAGIC))
    assume(not (len(body) >= 4 and body[1:4] == b"\x2a\x4d\x18" and body[0] & 0xF0 == 0x50))
    with pytest.raises(IntegrityError):
        decode(b"\x01" + body, max_size=1 << 20)


@given(cut=st.integers(0, 200))
def test_decode_refuses_truncated_zstd_frames(cut: int) -> None:
    frame = encode(Zstd(3), text(5000))
    assert frame[0] == 1
    assume(1 + cut < len(frame))
    with pytest.raises(IntegrityError):
        decode(frame[: len(frame) - 1 - cut], max_size=5000)


@given(pos=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_decode_of_corrupted_zstd_frame_fails_or_differs_but_never_crashes(pos: int, bit: int) -> None:
    # zstd's own checksum is off (the sealer authenticates); a flipped bit must either be
    # refused with IntegrityError or decode to something -- never another exception type.
    data = text(5000)
    frame = bytearray(encode(Zstd(3), data))
    pos %= len(frame) - 1
    frame[1 + pos] ^= 1 << bit
    try:
        out = decode(bytes(frame), max_size=5000)
    except IntegrityError:
        return
    assert len(out) <= 5000


@pytest.mark.parametrize("max_size", [0, 1, 4999])
def test_decode_refuses_zstd_output_larger_than_max_size(max_size: int) -> None:
    frame = encode(Zstd(3), text(5000))
    assert frame[0] == 1
    assert decode(frame, max_size=5000) == text(5000)
    with pytest.raises(IntegrityError):
        decode(frame, max_size=max_size)


def test_decode_refuses_zstd_frame_without_declared_size() -> None:
    body = zstandard.ZstdCompressor(write_content_size=False).compress(b"a" * 1000)
    with pytest.raises(IntegrityError):
        decode(b"\x01" + body, max_size=1 << 20)


def test_decode_refuses_a_small_frame_declaring_a_huge_size() -> None:
    # A decompression bomb: 1 MiB of zeros compresses to a few dozen bytes.
    body = zstandard.ZstdCompressor().compress(bytes(1 << 20))
    assert len(body) < 200
    with pytest.raises(IntegrityError):
        decode(b"\x01" + body, max_size=64 << 10)


@pytest.mark.parametrize("max_size", [0, 10, 99])
def test_decode_refuses_raw_output_larger_than_max_size(max_size: int) -> None:
    # decode's contract: "refuse output larger than max_size bytes" -- for raw frames too.
    frame = encode(NoCompression(), b"x" * 100)
    assert frame[0] == 0
    assert decode(frame, max_size=100) == b"x" * 100
    with pytest.raises(IntegrityError):
        decode(frame, max_size=max_size)


# -- JSON form and validation ----------------------------------------------------------------


@pytest.mark.parametrize("codec", [NoCompression(), *[Zstd(lv) for lv in (*range(-7, 0), *range(1, 23))]], ids=repr)
def test_codec_dict_round_trip(codec: Codec) -> None:
    d = codec.to_dict()
    assert d["codec"] == codec.name
    assert codec_from_dict(d) == codec


def test_codec_dict_forms() -> None:
    assert NoCompression().to_dict() == {"codec": "none"}
    assert Zstd(5).to_dict() == {"codec": "zstd", "level": 5}
    assert codec_from_dict({"codec": "zstd"}) == Zstd(3)


@pytest.mark.parametrize("d", [{}, {"codec": "lz4"}, {"codec": "ZSTD"}, {"codec": None}, {"level": 3}])
def test_unknown_codec_raises_config_error(d: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        codec_from_dict(d)


@pytest.mark.parametrize("level", [0, 23, -8, 100, -100])
def test_bad_zstd_levels_raise_config_error(level: int) -> None:
    with pytest.raises(ConfigError):
        Zstd(level)
    with pytest.raises(ConfigError):
        codec_from_dict({"codec": "zstd", "level": level})


@pytest.mark.parametrize("level", [1.5, "3", None])
def test_non_integer_zstd_level_raises_config_error(level: object) -> None:
    with pytest.raises(ConfigError):
        Zstd(level)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["fast", None, [3]])
def test_codec_from_dict_with_non_numeric_level_raises_config_error(level: object) -> None:
    # A config file with a bad level must give the documented ConfigError, not a bare
    # ValueError/TypeError from int().
    with pytest.raises(ConfigError):
        codec_from_dict({"codec": "zstd", "level": level})


def test_codec_from_dict_refuses_a_boolean_level() -> None:
    # JSON true is an int to Python; a config saying it is damaged, not level 1.
    with pytest.raises(ConfigError):
        codec_from_dict({"codec": "zstd", "level": True})


@pytest.mark.parametrize("d", [[], "zstd", None, 3])
def test_codec_from_dict_refuses_a_form_that_is_not_an_object(d: object) -> None:
    # A config whose "compression" is not an object must give ConfigError (which the config
    # reader reports as an unsupported format), not an AttributeError.
    with pytest.raises(ConfigError):
        codec_from_dict(d)  # type: ignore[arg-type]


def test_codec_from_dict_ignores_unknown_keys() -> None:
    # Older readers did; a config written with an extra key must keep opening.
    assert codec_from_dict({"codec": "none", "level": 3}) == NoCompression()
    assert codec_from_dict({"codec": "zstd", "level": 5, "x": 1}) == Zstd(5)


# -- the codec table ---------------------------------------------------------------------------


def test_the_table_holds_the_released_wire_ids_and_names() -> None:
    # The compatibility rule: these pairs are on disk and can never change.
    assert {i: c.name for i, c in CODEC_TABLE.by_id.items()} == {0: "none", 1: "zstd"}
    assert dict(CODEC_TABLE.retired) == dict(RETIRED_CODECS)


@pytest.mark.parametrize("cls", list(CODEC_TABLE.by_id.values()), ids=lambda c: c.name)
def test_table_lookups_round_trip(cls: type[Codec]) -> None:
    assert CODEC_TABLE.from_id(cls.wire_id) is cls
    assert CODEC_TABLE.from_name(cls.name) is cls
    assert CODEC_TABLE.by_name[cls.name].wire_id == cls.wire_id
    assert cls.frame_prefix == bytes([cls.wire_id])
    codec = cls.from_spec(None)
    assert codec_from_dict(codec.to_dict()) == codec


@pytest.mark.parametrize("cls", list(CODEC_TABLE.by_id.values()), ids=lambda c: c.name)
def test_every_codec_in_the_table_decodes(cls: type[Codec]) -> None:
    # decode dispatches by direct comparison; a codec added to the table without a branch
    # there fails here.
    data = text(20_000)
    frame = encode(cls.from_spec(None), data)
    assert frame[0] in (0, cls.wire_id)
    assert decode(frame, max_size=len(data)) == data
    if cls is not NoCompression:
        assert frame[0] == cls.wire_id, "premise: text compresses"


@given(wire=st.integers(0, 255).filter(lambda w: w not in CODEC_TABLE.by_id))
def test_unknown_wire_id_lookup_raises_config_error(wire: int) -> None:
    with pytest.raises(ConfigError, match="unknown codec wire ID"):
        CODEC_TABLE.from_id(wire)


@pytest.mark.parametrize("name", ["lz4", "ZSTD", "", "zstd:3", "None"])
def test_unknown_name_lookup_raises_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown compression codec"):
        CODEC_TABLE.from_name(name)


@dataclass(frozen=True)
class _Fake(NoCompression):
    """A codec shaped like the real ones (NoCompression's methods), to build tables that must be refused."""

    wire_id: ClassVar[int] = 7
    name: ClassVar[str] = "fake"
    frame_prefix: ClassVar[bytes] = bytes([7])
    spec_forms: ClassVar[tuple[str, ...]] = ("fake",)


def _fake(wire_id: int, name: str, prefix: bytes | None = None) -> type[Codec]:
    attrs = {"wire_id": wire_id, "name": name, "frame_prefix": bytes([wire_id]) if prefix is None else prefix}
    return dataclass(frozen=True)(type(f"Fake_{name}", (_Fake,), attrs))


def test_a_duplicate_wire_id_is_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate codec wire ID 1"):
        build_codec_table([NoCompression, Zstd, _fake(1, "zstd-again")])


def test_a_duplicate_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate codec name 'zstd'"):
        build_codec_table([NoCompression, Zstd, _fake(2, "zstd")])


def test_the_real_codecs_build_a_table_and_a_new_id_may_join() -> None:
    table = build_codec_table([NoCompression, Zstd, _fake(2, "fake")])
    assert sorted(table.by_id) == [0, 1, 2]
    assert table.from_name("fake").wire_id == 2


@pytest.mark.parametrize(("wire", "name"), [(2, "fake"), (9, "lz4")])
def test_a_retired_wire_id_or_name_is_never_reused(wire: int, name: str) -> None:
    retired = {2: "lz4"}
    with pytest.raises(ConfigError, match="retired"):
        build_codec_table([NoCompression, Zstd, _fake(wire, name)], retired=retired)


def test_a_retired_id_or_name_is_refused_on_lookup() -> None:
    table = build_codec_table([NoCompression, Zstd], retired={2: "lz4"})
    with pytest.raises(ConfigError, match="retired"):
        table.from_id(2)
    with pytest.raises(ConfigError, match="retired"):
        table.from_name("lz4")
    with pytest.raises(ConfigError, match="unknown"):
        table.from_id(3)


@pytest.mark.parametrize(("wire", "prefix"), [(256, b"\x00"), (-1, b"\x00"), (3, b"\x04"), (3, b"\x03\x00")])
def test_a_wire_id_must_be_one_byte_and_match_its_prefix(wire: int, prefix: bytes) -> None:
    with pytest.raises(ConfigError, match=r"wire ID|frame_prefix"):
        build_codec_table([_fake(wire, "fake", prefix)])


def test_encode_frames_with_the_codecs_own_prefix() -> None:
    # encode takes the wire byte from the codec, not from a constant that assumes zstd.
    class Shout(_Fake):
        wire_id: ClassVar[int] = 9
        frame_prefix: ClassVar[bytes] = b"\x09"

        def compress(self, data: bytes | memoryview) -> bytes | None:
            return bytes(data).upper()

    assert encode(Shout(), b"abc") == b"\x09ABC"
