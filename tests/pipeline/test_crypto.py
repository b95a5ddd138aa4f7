"""Sealing: round trips, tamper detection, binding of associated data, and key handling."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.errors import ConfigError, IntegrityError
from snapvault.pipeline.crypto import (
    AEAD_TABLE,
    RETIRED_AEADS,
    SEALERS,
    Aead,
    AEADSealer,
    PlainSealer,
    aead_from_name,
    build_aead_table,
    make_sealer,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
RANDOM = bytes(range(100, 128))
AD = b"snapvault test ad"

SEALER_NAMES = ["aes-256-gcm", "chacha20-poly1305", "none"]


def sealer(name: str, key: bytes = KEY) -> AEADSealer | PlainSealer:
    return make_sealer(name, key)


names = st.sampled_from(SEALER_NAMES)
randoms = st.binary(min_size=28, max_size=28)


@settings(max_examples=150)
@given(name=names, plaintext=st.binary(max_size=4096), ad=st.binary(max_size=64), random=randoms)
def test_round_trip(name: str, plaintext: bytes, ad: bytes, random: bytes) -> None:
    s = sealer(name)
    sealed = s.seal(plaintext, ad, random=random)
    assert len(sealed) == len(plaintext) + s.overhead
    assert s.open(sealed, ad) == plaintext
    assert s.open(memoryview(sealed), ad) == plaintext
    assert s.open(bytearray(sealed), ad) == plaintext


@settings(max_examples=100)
@given(name=names, plaintext=st.binary(max_size=4096), ad=st.binary(max_size=64), random=randoms)
def test_seal_buffer_writes_the_same_bytes_as_seal(name: str, plaintext: bytes, ad: bytes, random: bytes) -> None:
    # Blobs are sealed with seal_buffer, everything else with seal: one format, two paths.
    s = sealer(name)
    buffered = s.seal_buffer(memoryview(plaintext), ad, random=random)
    assert isinstance(buffered, bytearray)
    assert buffered == s.seal(plaintext, ad, random=random)
    assert s.open(buffered, ad) == plaintext


def test_seal_buffer_needs_28_random_bytes() -> None:
    with pytest.raises(ValueError, match="28 random bytes"):
        sealer("aes-256-gcm").seal_buffer(b"x", AD, random=RANDOM[:27])


@pytest.mark.parametrize("name", SEALER_NAMES)
def test_seal_accepts_memoryview(name: str) -> None:
    s = sealer(name)
    data = b"x" * 1000
    assert s.open(s.seal(memoryview(data), AD, random=RANDOM), AD) == data


@settings(max_examples=300)
@given(name=names, plaintext=st.binary(max_size=256), where=st.data())
def test_any_single_flipped_bit_is_detected(name: str, plaintext: bytes, where: st.DataObject) -> None:
    s = sealer(name)
    sealed = bytearray(s.seal(plaintext, AD, random=RANDOM))
    pos = where.draw(st.integers(0, len(sealed) - 1), label="position")
    bit = where.draw(st.integers(0, 7), label="bit")
    sealed[pos] ^= 1 << bit
    with pytest.raises(IntegrityError):
        s.open(bytes(sealed), AD)


@settings(max_examples=100)
@given(name=names, plaintext=st.binary(max_size=256), where=st.data())
def test_any_replaced_byte_is_detected(name: str, plaintext: bytes, where: st.DataObject) -> None:
    s = sealer(name)
    sealed = bytearray(s.seal(plaintext, AD, random=RANDOM))
    pos = where.draw(st.integers(0, len(sealed) - 1), label="position")
    value = where.draw(st.integers(0, 255).filter(lambda v: v != sealed[pos]), label="value")
    sealed[pos] = value
    with pytest.raises(IntegrityError):
        s.open(bytes(sealed), AD)


@given(name=names, plaintext=st.binary(max_size=256), ad=st.binary(max_size=32), other=st.binary(max_size=32))
def test_wrong_associated_data_fails(name: str, plaintext: bytes, ad: bytes, other: bytes) -> None:
    s = sealer(name)
    sealed = s.seal(plaintext, ad, random=RANDOM)
    if ad == other:
        assert s.open(sealed, other) == plaintext
    else:
        with pytest.raises(IntegrityError):
            s.open(sealed, other)


@pytest.mark.parametrize("name", SEALER_NAMES)
def test_wrong_key_fails(name: str) -> None:
    sealed = sealer(name, KEY).seal(b"secret payload", AD, random=RANDOM)
    with pytest.raises(IntegrityError):
        sealer(name, OTHER_KEY).open(sealed, AD)


def test_one_aead_cannot_open_the_other() -> None:
    aes, chacha = sealer("aes-256-gcm"), sealer("chacha20-poly1305")
    with pytest.raises(IntegrityError):
        chacha.open(aes.seal(b"payload", AD, random=RANDOM), AD)
    with pytest.raises(IntegrityError):
        aes.open(chacha.seal(b"payload", AD, random=RANDOM), AD)


@settings(max_examples=150)
@given(name=names, plaintext=st.binary(max_size=128), cut=st.data())
def test_truncated_or_extended_objects_fail(name: str, plaintext: bytes, cut: st.DataObject) -> None:
    s = sealer(name)
    sealed = s.seal(plaintext, AD, random=RANDOM)
    n = cut.draw(st.integers(0, len(sealed) - 1), label="kept")
    with pytest.raises(IntegrityError):
        s.open(sealed[:n], AD)
    with pytest.raises(IntegrityError):
        s.open(sealed[len(sealed) - n :] if n else b"", AD)
    extra = cut.draw(st.binary(min_size=1, max_size=8), label="extra")
    with pytest.raises(IntegrityError):
        s.open(sealed + extra, AD)


@pytest.mark.parametrize("name", SEALER_NAMES)
def test_empty_input_is_refused(name: str) -> None:
    with pytest.raises(IntegrityError):
        sealer(name).open(b"", AD)


@pytest.mark.parametrize("name", ["aes-256-gcm", "chacha20-poly1305"])
def test_fresh_randomness_gives_different_ciphertexts(name: str) -> None:
    s = sealer(name)
    plaintext = b"the same plaintext, sealed twice " * 4
    a = s.seal(plaintext, AD, random=os.urandom(28))
    b = s.seal(plaintext, AD, random=os.urandom(28))
    assert a != b
    # Not only the salt/nonce differ: the ciphertext bodies differ too.
    assert a[28:] != b[28:]
    assert s.open(a, AD) == s.open(b, AD) == plaintext
    # The envelope starts with the random bytes, and the plaintext does not show through.
    r = os.urandom(28)
    sealed = s.seal(plaintext, AD, random=r)
    assert sealed[:28] == r
    assert b"the same plaintext" not in sealed


@pytest.mark.parametrize("name", ["aes-256-gcm", "chacha20-poly1305"])
def test_sealing_is_deterministic_for_fixed_randomness(name: str) -> None:
    s = sealer(name)
    assert s.seal(b"abc", AD, random=RANDOM) == s.seal(b"abc", AD, random=RANDOM)


@pytest.mark.parametrize("name", ["aes-256-gcm", "chacha20-poly1305"])
def test_same_nonce_with_different_salt_uses_different_keys(name: str) -> None:
    # The per-object key comes from the salt: same nonce, different salt -> unrelated streams.
    s = sealer(name)
    r1 = bytes(16) + bytes(range(12))
    r2 = b"\x01" + bytes(15) + bytes(range(12))
    a, b = s.seal(bytes(64), AD, random=r1), s.seal(bytes(64), AD, random=r2)
    assert a[28:] != b[28:]


@pytest.mark.parametrize("name", ["aes-256-gcm", "chacha20-poly1305"])
@pytest.mark.parametrize("n", [0, 27, 29, 32])
def test_seal_requires_28_random_bytes(name: str, n: int) -> None:
    with pytest.raises(ValueError, match="28 random bytes"):
        sealer(name).seal(b"x", AD, random=bytes(n))


def test_plain_sealer_is_readable_but_checksummed() -> None:
    s = PlainSealer(KEY)
    sealed = s.seal(b"visible", AD, random=RANDOM)
    assert sealed.startswith(b"visible")
    assert len(sealed) == len(b"visible") + 32
    # The random bytes are ignored.
    assert s.seal(b"visible", AD, random=os.urandom(28)) == sealed


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(31), bytes(33), bytes(64)])
def test_aead_key_must_be_32_bytes(key: bytes) -> None:
    with pytest.raises(ConfigError):
        AEADSealer(key)


@pytest.mark.parametrize("name", ["aes-128-gcm", "xchacha20-poly1305", "", "none", "AES-256-GCM"])
def test_unknown_aead_name_raises_config_error(name: str) -> None:
    with pytest.raises(ConfigError):
        AEADSealer(KEY, name)


def test_make_sealer_covers_every_advertised_name() -> None:
    assert set(SEALERS) == set(SEALER_NAMES)
    for name in SEALERS:
        s = make_sealer(name, KEY)
        assert s.name == name
    assert isinstance(make_sealer("none", KEY), PlainSealer)
    assert isinstance(make_sealer("aes-256-gcm", KEY), AEADSealer)
    with pytest.raises(ConfigError):
        make_sealer("rot13", KEY)


def test_overheads() -> None:
    assert AEADSealer(KEY).overhead == 16 + 12 + 16
    assert AEADSealer.RANDOM_BYTES == 28
    assert PlainSealer(KEY).overhead == 32


@pytest.mark.parametrize("name", SEALER_NAMES)
def test_repr_does_not_leak_the_key(name: str) -> None:
    key = bytes.fromhex("deadbeef" * 8)
    text = repr(make_sealer(name, key))
    assert "deadbeef" not in text
    assert "\\xde\\xad" not in text


# -- the AEAD table ----------------------------------------------------------------------------


def test_the_table_holds_the_released_names() -> None:
    # The compatibility rule: these names are in configs and key files and never change meaning.
    assert {a.name: a.cipher for a in AEAD_TABLE.by_name.values()} == {
        "aes-256-gcm": AESGCM,
        "chacha20-poly1305": ChaCha20Poly1305,
        "none": None,
    }
    assert SEALERS == ("aes-256-gcm", "chacha20-poly1305", "none")
    assert AEAD_TABLE.retired == RETIRED_AEADS


@pytest.mark.parametrize("name", SEALER_NAMES)
def test_aead_lookup_round_trips(name: str) -> None:
    aead = aead_from_name(name)
    assert aead.name == name
    assert aead is AEAD_TABLE.by_name[name]
    s = aead.sealer(KEY)
    assert s.name == name
    assert isinstance(s, PlainSealer) is (not aead.encrypted)
    assert s == make_sealer(name, KEY)


@pytest.mark.parametrize("name", ["aes-128-gcm", "", "AES-256-GCM", "xchacha20-poly1305", "plain"])
def test_unknown_aead_name_lookup_raises_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown encryption") as exc:
        aead_from_name(name)
    # The message lists what would have worked.
    for known in SEALER_NAMES:
        assert known in str(exc.value)


def test_a_duplicate_aead_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate AEAD name 'aes-256-gcm'"):
        build_aead_table([*AEAD_TABLE.by_name.values(), Aead("aes-256-gcm", ChaCha20Poly1305)])


def test_a_retired_aead_name_is_never_reused_and_refused_on_lookup() -> None:
    with pytest.raises(ConfigError, match="retired"):
        build_aead_table([Aead("aes-256-ocb", AESGCM)], retired=frozenset({"aes-256-ocb"}))
    table = build_aead_table(AEAD_TABLE.by_name.values(), retired=frozenset({"aes-256-ocb"}))
    assert table.by_name == AEAD_TABLE.by_name
    with pytest.raises(ConfigError, match="retired"):
        table.from_name("aes-256-ocb")
    with pytest.raises(ConfigError, match="unknown"):
        table.from_name("aes-256-siv")


@pytest.mark.parametrize("name", ["aes-256-gcm", "chacha20-poly1305"])
def test_sealers_are_equal_by_key_and_name(name: str) -> None:
    # The resolved cipher is an implementation detail: equality and repr stay as they were.
    assert AEADSealer(KEY, name) == AEADSealer(KEY, name)
    assert AEADSealer(KEY, name) != AEADSealer(OTHER_KEY, name)
    assert "cipher" not in repr(AEADSealer(KEY, name))


@settings(max_examples=150)
@given(name=names, plaintext=st.binary(max_size=4096), where=st.data())
def test_authenticate_agrees_with_open(name: str, plaintext: bytes, where: st.DataObject) -> None:
    # authenticate is open without keeping the plaintext: true exactly when open succeeds.
    s = sealer(name)
    scratch = bytearray()
    sealed = bytearray(s.seal(plaintext, AD, random=RANDOM))
    assert s.authenticate(sealed, AD, scratch)
    assert s.authenticate(memoryview(bytes(sealed)), AD, scratch)
    assert not s.authenticate(sealed, AD + b"x", scratch)
    pos = where.draw(st.integers(0, len(sealed) - 1), label="position")
    sealed[pos] ^= 1 << where.draw(st.integers(0, 7), label="bit")
    assert not s.authenticate(sealed, AD, scratch)
    with pytest.raises(IntegrityError):
        s.open(bytes(sealed), AD)
    assert not s.authenticate(bytes(sealed[: s.overhead - 1]), AD, scratch)


@pytest.mark.parametrize("name", ["aes-256-gcm", "chacha20-poly1305"])
def test_authenticate_reuses_and_grows_its_scratch(name: str) -> None:
    s = sealer(name)
    scratch = bytearray()
    small, large = s.seal(b"a" * 10, AD, random=RANDOM), s.seal(os.urandom(100_000), AD, random=RANDOM)
    assert s.authenticate(small, AD, scratch)
    assert len(scratch) >= 10
    assert s.authenticate(large, AD, scratch)
    grown = len(scratch)
    assert grown >= 100_000
    assert s.authenticate(small, AD, scratch)
    assert len(scratch) == grown


def test_authenticate_accepts_only_the_current_key() -> None:
    # A retired key's object opens (open tries retired keys) but does not authenticate as
    # the current key's: a repack re-seals exactly those.
    old = AEADSealer(OTHER_KEY)
    rotated = AEADSealer(KEY, retired=(OTHER_KEY,))
    sealed = old.seal(b"payload", AD, random=RANDOM)
    assert rotated.open(sealed, AD) == b"payload"
    assert not rotated.current_only().authenticate(sealed, AD, bytearray())
    assert rotated.authenticate(rotated.seal(b"payload", AD, random=RANDOM), AD, bytearray())
