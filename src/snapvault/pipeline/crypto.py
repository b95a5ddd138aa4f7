"""Sealing: authenticated encryption of blobs and repository files.

Envelope of a sealed object (encrypted repositories)::

    salt (16 bytes) | nonce (12 bytes) | ciphertext | tag (16 bytes)

Each object gets a fresh random 16-byte salt and 12-byte nonce. The AEAD key for the object is
BLAKE3-keyed(master encryption key, salt), so a key/nonce pair repeats only if 28 random bytes
repeat: the nonce-reuse bound of a 96-bit random nonce (2**32 messages per key) does not apply.
The associated data binds what the object is (a blob's type and ID, or a file's kind), so a
sealed blob cannot be swapped for another one, nor a snapshot for an index.

Unencrypted repositories (explicit opt-in) use :class:`PlainSealer`: plaintext followed by a
32-byte keyed BLAKE3 MAC whose key is stored in clear. It detects corruption, not forgery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from snapvault.errors import ConfigError, IntegrityError

__all__ = [
    "SEALERS",
    "AEADSealer",
    "PlainSealer",
    "Sealer",
    "make_sealer",
]

_SALT = 16
_NONCE = 12
_TAG = 16


class Sealer(Protocol):
    """Encrypts and authenticates; ``open`` raises :class:`IntegrityError` on any change."""

    name: str
    overhead: int

    def seal(self, plaintext: bytes | memoryview, ad: bytes, *, random: bytes) -> bytes:
        """Seal ``plaintext``; ``random`` is 28 fresh random bytes (ignored when unencrypted)."""

    def seal_buffer(self, plaintext: bytes | memoryview, ad: bytes, *, random: bytes) -> bytearray:
        """Like :meth:`seal`, written straight into one new buffer (for large blobs)."""

    def open(self, sealed: bytes | memoryview, ad: bytes) -> bytes:
        """Verify and return the plaintext."""


@dataclass(frozen=True)
class AEADSealer:
    """AES-256-GCM or ChaCha20-Poly1305 with a per-object derived key."""

    key: bytes = field(repr=False)
    name: str = "aes-256-gcm"
    overhead: int = _SALT + _NONCE + _TAG
    RANDOM_BYTES: ClassVar[int] = _SALT + _NONCE

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ConfigError("encryption key must be 32 bytes")
        if self.name not in _AEADS:
            raise ConfigError(f"unknown AEAD {self.name!r}; known: {sorted(_AEADS)}")

    def _aead(self, salt: bytes | memoryview) -> AESGCM | ChaCha20Poly1305:
        subkey = blake3.blake3(salt, key=self.key).digest()
        return _AEADS[self.name](subkey)

    def seal(self, plaintext: bytes | memoryview, ad: bytes, *, random: bytes) -> bytes:
        if len(random) != _SALT + _NONCE:
            raise ValueError("seal needs 28 random bytes")
        salt, nonce = random[:_SALT], random[_SALT:]
        return random + self._aead(salt).encrypt(nonce, plaintext, ad)

    def seal_buffer(self, plaintext: bytes | memoryview, ad: bytes, *, random: bytes) -> bytearray:
        # The ciphertext is written behind the salt and nonce in place: seal() allocates it and
        # then copies it again to prepend them, two extra buffers of up to 8 MiB per chunk.
        if len(random) != _SALT + _NONCE:
            raise ValueError("seal needs 28 random bytes")
        n = len(random)
        out = bytearray(n + len(plaintext) + _TAG)
        out[:n] = random
        aead = self._aead(random[:_SALT])
        if hasattr(aead, "encrypt_into"):
            aead.encrypt_into(random[_SALT:], plaintext, ad, memoryview(out)[n:])
        else:  # a cryptography release without it
            out[n:] = aead.encrypt(random[_SALT:], plaintext, ad)
        return out

    def open(self, sealed: bytes | memoryview, ad: bytes) -> bytes:
        if len(sealed) < self.overhead:
            raise IntegrityError("sealed object is truncated")
        view = memoryview(sealed)
        salt, nonce, body = view[:_SALT], view[_SALT : _SALT + _NONCE], view[_SALT + _NONCE :]
        try:
            return self._aead(salt).decrypt(bytes(nonce), body, ad)
        except InvalidTag:
            raise IntegrityError("authentication failed: the object was altered or the key is wrong") from None


@dataclass(frozen=True)
class PlainSealer:
    """No encryption: plaintext plus a keyed BLAKE3 checksum."""

    key: bytes = field(repr=False)
    name: str = "none"
    overhead: int = 32

    def seal(self, plaintext: bytes | memoryview, ad: bytes, *, random: bytes) -> bytes:
        mac = blake3.blake3(ad, key=self.key)
        mac.update(plaintext)
        return bytes(plaintext) + mac.digest()

    def seal_buffer(self, plaintext: bytes | memoryview, ad: bytes, *, random: bytes) -> bytearray:
        mac = blake3.blake3(ad, key=self.key)
        mac.update(plaintext)
        out = bytearray(plaintext)
        out += mac.digest()
        return out

    def open(self, sealed: bytes | memoryview, ad: bytes) -> bytes:
        if len(sealed) < self.overhead:
            raise IntegrityError("object is truncated")
        view = memoryview(sealed)
        body, tag = view[:-32], bytes(view[-32:])
        mac = blake3.blake3(ad, key=self.key)
        mac.update(body)
        if mac.digest() != tag:
            raise IntegrityError("checksum mismatch: the object was altered")
        return bytes(body)


_AEADS: dict[str, type[AESGCM] | type[ChaCha20Poly1305]] = {
    "aes-256-gcm": AESGCM,
    "chacha20-poly1305": ChaCha20Poly1305,
}

#: Names accepted for a repository's ``encryption`` setting.
SEALERS = ("aes-256-gcm", "chacha20-poly1305", "none")


def make_sealer(name: str, key: bytes) -> AEADSealer | PlainSealer:
    """Return the sealer called ``name`` with ``key``."""
    if name == "none":
        return PlainSealer(key)
    return AEADSealer(key, name)
