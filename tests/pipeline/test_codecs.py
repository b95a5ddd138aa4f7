"""Compression codecs: framing, the raw fallback, strict decoding and the JSON form."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import zstandard
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from snapvault.errors import ConfigError, IntegrityError
from snapvault.pipeline.codecs import NoCompression, Zstd, codec_from_dict, decode, encode

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
def test_round_trip_any_bytes(codec: NoCompression | Zstd, data: bytes) -> None:
    frame = encode(codec, data)
    assert frame[0] in (0, 1)
    assert decode(frame, max_size=len(data)) == data
    assert decode(memoryview(frame), max_size=len(data) + 100) == data


@settings(max_examples=40, deadline=None)
@given(codec=codecs, n=st.integers(0, 300_000), kind=st.sampled_from(["random", "text", "zeros"]))
def test_round_trip_large_and_compressible(codec: NoCompression | Zstd, n: int, kind: str) -> None:
    data = {"random": rand(n, n), "text": text(n), "zeros": bytes(n)}[kind]
    frame = encode(codec, memoryview(data))
    assert decode(frame, max_size=n) == data


def test_wire_ids_are_stable() -> None:
    assert NoCompression.wire_id == 0
    assert Zstd.wire_id == 1


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@pytest.mark.parametrize("n", [0, 1, 100, 4096, 200_000])
def test_incompressible_data_is_stored_raw(codec: NoCompression | Zstd, n: int) -> None:
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
def test_codec_dict_round_trip(codec: NoCompression | Zstd) -> None:
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
