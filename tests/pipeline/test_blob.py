"""Blob sealing: compress, seal with type and ID bound, and verify everything on the way back."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from snapvault.errors import IntegrityError
from snapvault.pipeline.blob import MAX_BLOB, open_blob, seal_blob
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


def test_max_blob_bound() -> None:
    assert MAX_BLOB == 256 << 20
