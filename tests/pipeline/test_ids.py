"""Keyed blob IDs, unkeyed object hashes and key derivation."""

from __future__ import annotations

import random

import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.pipeline.ids import ID_SIZE, BlobType, blob_id, derive_key, object_hash

keys = st.binary(min_size=32, max_size=32)


@given(key=keys, data=st.binary(max_size=4096))
def test_blob_id_is_keyed_and_not_the_plain_hash(key: bytes, data: bytes) -> None:
    bid = blob_id(key, data)
    assert len(bid) == ID_SIZE == 32
    assert bid != blake3.blake3(data).digest()
    assert bid != object_hash(data)


@given(k1=keys, k2=keys, data=st.binary(max_size=1024))
def test_blob_id_differs_between_keys(k1: bytes, k2: bytes, data: bytes) -> None:
    if k1 == k2:
        assert blob_id(k1, data) == blob_id(k2, data)
    else:
        assert blob_id(k1, data) != blob_id(k2, data)


@given(key=keys, d1=st.binary(max_size=512), d2=st.binary(max_size=512))
def test_blob_id_differs_between_contents(key: bytes, d1: bytes, d2: bytes) -> None:
    assert (blob_id(key, d1) == blob_id(key, d2)) == (d1 == d2)


@given(key=keys, data=st.binary(max_size=2048))
def test_blob_id_is_deterministic_across_buffer_types(key: bytes, data: bytes) -> None:
    expected = blob_id(key, data)
    assert blob_id(bytes(key), bytes(data)) == expected
    assert blob_id(key, bytearray(data)) == expected
    assert blob_id(key, memoryview(data)) == expected


def test_blob_id_known_answer_matches_blake3_keyed_mode() -> None:
    key = bytes(range(32))
    data = b"snapvault"
    assert blob_id(key, data) == blake3.blake3(data, key=key).digest()


@settings(deadline=None, max_examples=3)
@given(seed=st.integers(0, 2**32 - 1))
def test_blob_id_of_large_input_uses_threads_but_gives_the_same_id(seed: int) -> None:
    # From 4 MiB BLAKE3 hashes with several threads; the digest must not depend on that.
    rng = random.Random(seed)
    key = rng.randbytes(32)
    data = rng.randbytes((4 << 20) + 12345)
    single = blake3.blake3(data, key=key, max_threads=1).digest()
    assert blob_id(key, data) == single
    assert blob_id(key, memoryview(data)) == single
    # One flipped bit anywhere changes the ID.
    edited = bytearray(data)
    edited[rng.randrange(len(edited))] ^= 1 << rng.randrange(8)
    assert blob_id(key, edited) != single


@given(data=st.binary(max_size=2048))
def test_object_hash_is_plain_blake3(data: bytes) -> None:
    h = object_hash(data)
    assert h == blake3.blake3(data).digest()
    assert len(h) == 32
    assert object_hash(memoryview(data)) == h
    assert object_hash(data + b"\0") != h


@given(
    contexts=st.lists(st.text(min_size=1, max_size=40), min_size=2, max_size=5, unique=True),
    material=st.binary(min_size=32, max_size=64),
)
def test_derive_key_differs_per_context(contexts: list[str], material: bytes) -> None:
    derived = [derive_key(c, material) for c in contexts]
    assert all(len(k) == 32 for k in derived)
    assert len(set(derived)) == len(contexts)
    assert material[:32] not in derived
    # Deterministic.
    assert [derive_key(c, material) for c in contexts] == derived


@given(m1=st.binary(min_size=32, max_size=32), m2=st.binary(min_size=32, max_size=32))
def test_derive_key_differs_per_material(m1: bytes, m2: bytes) -> None:
    assert (derive_key("snapvault test", m1) == derive_key("snapvault test", m2)) == (m1 == m2)


def test_derive_key_matches_blake3_derive_key_mode() -> None:
    material = b"\x07" * 32
    assert derive_key("ctx", material) == blake3.blake3(material, derive_key_context="ctx").digest()
    assert derive_key("ctx", material) != blake3.blake3(material).digest()


def test_blob_type_wire_values_are_stable() -> None:
    # Written to disk: never renumber.
    assert int(BlobType.DATA) == 0
    assert int(BlobType.TREE) == 1
    assert [t.name for t in BlobType] == ["DATA", "TREE"]
