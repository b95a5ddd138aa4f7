"""Blob sealing: compress, seal with type and ID bound, and verify everything on the way back."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from snapvault.errors import ConfigError, IntegrityError
from snapvault.pipeline.blob import MAX_DATA_BLOB, MAX_SEALED_OVERHEAD, MAX_TREE_BLOB, open_blob, seal_blob
from snapvault.pipeline.chunker import ChunkerParams
from snapvault.pipeline.codecs import Codec, NoCompression, Zstd
from snapvault.pipeline.crypto import make_sealer
from snapvault.pipeline.ids import BlobType, blob_id

ENC_KEY = bytes(range(32))
ID_KEY = bytes(range(32, 64))
RANDOM = bytes(range(28))

SEALERS = ["aes-256-gcm", "chacha20-poly1305", "none"]
CODECS = [NoCompression(), Zstd(1), Zstd(3), Zstd(19)]

sealer_names = st.sampled_from(SEALERS)
codecs = st.sampled_from(CODECS)
types = st.sampled_from(list(BlobType))
payloads = st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=16), st.integers(1, 500)),
)


def make(name: str, codec: Codec, btype: BlobType, data: bytes) -> tuple[bytes, bytes]:
    bid = blob_id(ID_KEY, data)
    return bid, seal_blob(make_sealer(name, ENC_KEY), codec, btype, bid, data, RANDOM)


@settings(max_examples=150)
@given(name=sealer_names, codec=codecs, btype=types, data=payloads)
def test_round_trip(name: str, codec: Codec, btype: BlobType, data: bytes) -> None:
    s = make_sealer(name, ENC_KEY)
    bid, sealed = make(name, codec, btype, data)
    assert open_blob(s, ID_KEY, btype, bid, sealed) == data
    assert open_blob(s, ID_KEY, btype, bid, sealed, raw_length=len(data)) == data
    assert open_blob(s, ID_KEY, btype, bid, memoryview(sealed), len(data)) == data


@pytest.mark.parametrize("name", SEALERS)
def test_compressible_blobs_are_stored_smaller(name: str) -> None:
    data = b"0123456789" * 5000
    _, sealed = make(name, Zstd(3), BlobType.DATA, data)
    assert len(sealed) < len(data) // 10
    _, raw = make(name, NoCompression(), BlobType.DATA, data)
    assert len(raw) > len(data)


@pytest.mark.parametrize("name", SEALERS)
def test_wrong_blob_id_fails(name: str) -> None:
    s = make_sealer(name, ENC_KEY)
    _, sealed = make(name, Zstd(3), BlobType.DATA, b"hello world")
    other = blob_id(ID_KEY, b"something else")
    with pytest.raises(IntegrityError):
        open_blob(s, ID_KEY, BlobType.DATA, other, sealed)


@pytest.mark.parametrize("name", SEALERS)
@pytest.mark.parametrize(("sealed_as", "opened_as"), [(BlobType.DATA, BlobType.TREE), (BlobType.TREE, BlobType.DATA)])
def test_wrong_blob_type_fails(name: str, sealed_as: BlobType, opened_as: BlobType) -> None:
    s = make_sealer(name, ENC_KEY)
    bid, sealed = make(name, Zstd(3), sealed_as, b'{"nodes":[],"v":1}')
    with pytest.raises(IntegrityError):
        open_blob(s, ID_KEY, opened_as, bid, sealed)


@pytest.mark.parametrize("name", SEALERS)
def test_content_not_matching_its_id_fails_even_when_authentic(name: str) -> None:
    # Sealed under an ID that is not the keyed hash of its content (a writer bug or a forger
    # holding the sealing key): the AEAD accepts it, the ID check must not.
    s = make_sealer(name, ENC_KEY)
    wrong_bid = blob_id(ID_KEY, b"the claimed content")
    sealed = seal_blob(s, Zstd(3), BlobType.DATA, wrong_bid, b"the actual content", RANDOM)
    with pytest.raises(IntegrityError) as exc:
        open_blob(s, ID_KEY, BlobType.DATA, wrong_bid, sealed)
    assert exc.value.blob_id == wrong_bid.hex()


@pytest.mark.parametrize("name", SEALERS)
def test_wrong_id_key_fails(name: str) -> None:
    s = make_sealer(name, ENC_KEY)
    bid, sealed = make(name, Zstd(3), BlobType.DATA, b"payload")
    with pytest.raises(IntegrityError):
        open_blob(s, bytes(32), BlobType.DATA, bid, sealed)


@settings(max_examples=200)
@given(name=sealer_names, codec=codecs, data=payloads, where=st.data())
def test_tampered_bytes_fail(name: str, codec: Codec, data: bytes, where: st.DataObject) -> None:
    s = make_sealer(name, ENC_KEY)
    bid, sealed = make(name, codec, BlobType.DATA, data)
    damaged = bytearray(sealed)
    pos = where.draw(st.integers(0, len(damaged) - 1), label="position")
    damaged[pos] ^= 1 << where.draw(st.integers(0, 7), label="bit")
    with pytest.raises(IntegrityError):
        open_blob(s, ID_KEY, BlobType.DATA, bid, bytes(damaged))


@settings(max_examples=100)
@given(name=sealer_names, codec=codecs, data=payloads, delta=st.integers(-100, 100).filter(bool))
def test_wrong_raw_length_fails(name: str, codec: Codec, data: bytes, delta: int) -> None:
    s = make_sealer(name, ENC_KEY)
    bid, sealed = make(name, codec, BlobType.DATA, data)
    wrong = len(data) + delta
    assume(wrong >= 0)
    with pytest.raises(IntegrityError):
        open_blob(s, ID_KEY, BlobType.DATA, bid, sealed, raw_length=wrong)


@pytest.mark.parametrize("name", SEALERS)
def test_truncated_blob_fails(name: str) -> None:
    s = make_sealer(name, ENC_KEY)
    bid, sealed = make(name, Zstd(3), BlobType.DATA, b"abc" * 100)
    for n in (0, 1, len(sealed) // 2, len(sealed) - 1):
        with pytest.raises(IntegrityError):
            open_blob(s, ID_KEY, BlobType.DATA, bid, sealed[:n])


def test_the_data_blob_limit_is_the_largest_chunk_a_chunker_may_cut() -> None:
    ChunkerParams(min_size=1 << 20, avg_size=4 << 20, max_size=MAX_DATA_BLOB)
    with pytest.raises(ConfigError):
        ChunkerParams(min_size=1 << 20, avg_size=4 << 20, max_size=2 * MAX_DATA_BLOB)


@pytest.mark.parametrize("btype", list(BlobType))
def test_a_declared_size_over_the_types_limit_is_refused_before_anything_is_opened(btype: BlobType) -> None:
    # The index says 4 GiB (or just past the limit): refused on the numbers alone, with a
    # message that says so, not after an allocation of that size.
    limit = MAX_TREE_BLOB if btype is BlobType.TREE else MAX_DATA_BLOB
    bid, sealed = make("aes-256-gcm", Zstd(3), btype, b"small")
    for declared in (limit + 1, (1 << 32) - 1):
        with pytest.raises(IntegrityError, match="over the format's limit"):
            open_blob(make_sealer("aes-256-gcm", ENC_KEY), ID_KEY, btype, bid, sealed, raw_length=declared)


def test_a_tree_may_be_larger_than_any_data_blob_but_not_past_its_own_limit() -> None:
    s = make_sealer("none", ENC_KEY)
    data = b"t" * (MAX_DATA_BLOB + 1)
    bid, sealed = make("none", Zstd(1), BlobType.TREE, data)
    assert open_blob(s, ID_KEY, BlobType.TREE, bid, sealed, raw_length=len(data)) == data
    # Decompression itself is bounded by the type's limit when no size is given.
    with pytest.raises(IntegrityError):
        open_blob(s, ID_KEY, BlobType.DATA, bid, sealed)


def test_a_stored_blob_longer_than_the_limit_allows_is_refused_unopened() -> None:
    junk = bytes(MAX_DATA_BLOB + MAX_SEALED_OVERHEAD + 1)
    with pytest.raises(IntegrityError, match="stored blob is"):
        open_blob(make_sealer("aes-256-gcm", ENC_KEY), ID_KEY, BlobType.DATA, bytes(32), junk)
