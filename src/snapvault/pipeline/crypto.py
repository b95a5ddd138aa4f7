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

The choice is stored by name (the config's ``encryption``, a key file's ``aead``), and
:data:`AEAD_TABLE` is the one list of names. Compatibility rule: a name, once released, always
means the same cipher and envelope; a name no longer offered is retired into
:data:`RETIRED_AEADS` and never given to another cipher. A reader refuses a name it does not
know. As for codecs, the set is closed: a repository must open without plugins.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import ClassVar, Protocol

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from snapvault.errors import ConfigError, IntegrityError

__all__ = [
    "AEAD_TABLE",
    "RETIRED_AEADS",
    "SEALERS",
    "AEADSealer",
    "Aead",
    "AeadTable",
    "PlainSealer",
    "Sealer",
    "aead_from_name",
    "build_aead_table",
    "make_sealer",
]

_SALT = 16
_NONCE = 12
_TAG = 16

_Cipher = type[AESGCM] | type[ChaCha20Poly1305]


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

    def authenticate(self, sealed: bytes | memoryview, ad: bytes, scratch: bytearray) -> bool:
        """Whether ``sealed`` opens under the current key, its plaintext dropped.

        ``scratch`` is working space the caller reuses from object to object (grown as
        needed): copying sealed bytes as they are (a repack) then proves each object intact
        without a new plaintext buffer for each, whose page faults cost more than the
        decryption itself.
        """


@dataclass(frozen=True)
class AEADSealer:
    """AES-256-GCM or ChaCha20-Poly1305 with a per-object derived key."""

    key: bytes = field(repr=False)
    name: str = "aes-256-gcm"
    overhead: int = _SALT + _NONCE + _TAG
    #: Encryption keys retired by a key rotation, newest first: objects sealed before the
    #: rotation still open (each tried after ``key`` fails), nothing new is sealed with them.
    retired: tuple[bytes, ...] = field(default=(), repr=False)
    RANDOM_BYTES: ClassVar[int] = _SALT + _NONCE
    # Resolved from the name once here, not looked up again for every blob.
    _cipher: _Cipher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) != 32 or any(len(k) != 32 for k in self.retired):
            raise ConfigError("encryption key must be 32 bytes")
        entry = AEAD_TABLE.by_name.get(self.name)
        cipher = None if entry is None else entry.cipher
        if cipher is None:
            known = [a.name for a in AEAD_TABLE.by_name.values() if a.cipher is not None]
            raise ConfigError(f"unknown AEAD {self.name!r}; known: {known}")
        object.__setattr__(self, "_cipher", cipher)

    def _aead(self, salt: bytes | memoryview) -> AESGCM | ChaCha20Poly1305:
        subkey = blake3.blake3(salt, key=self.key).digest()
        return self._cipher(subkey)

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
            pass
        # No key ID is stored: the tag tells which key sealed an object (a wrong key fails it
        # but with probability 2^-128), so retired keys are tried, newest first.
        for old in self.retired:
            try:
                subkey = blake3.blake3(salt, key=old).digest()
                return self._cipher(subkey).decrypt(bytes(nonce), body, ad)
            except InvalidTag:
                continue
        raise IntegrityError("authentication failed: the object was altered or the key is wrong")

    def authenticate(self, sealed: bytes | memoryview, ad: bytes, scratch: bytearray) -> bool:
        n = len(sealed) - self.overhead
        if n < 0:
            return False
        if len(scratch) < n:
            scratch.extend(bytes(max(n, 2 * len(scratch)) - len(scratch)))
        view = memoryview(sealed)
        salt, nonce, body = view[:_SALT], bytes(view[_SALT : _SALT + _NONCE]), view[_SALT + _NONCE :]
        aead = self._aead(salt)
        try:
            if hasattr(aead, "decrypt_into"):
                with memoryview(scratch) as out:
                    aead.decrypt_into(nonce, body, ad, out[:n])
            else:  # a cryptography release without it
                aead.decrypt(nonce, body, ad)
        except InvalidTag:
            return False
        return True

    def current_only(self) -> AEADSealer:
        """This sealer without its retired keys: opens only what the current key sealed."""
        return replace(self, retired=())


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

    def authenticate(self, sealed: bytes | memoryview, ad: bytes, scratch: bytearray) -> bool:
        if len(sealed) < self.overhead:
            return False
        view = memoryview(sealed)
        mac = blake3.blake3(ad, key=self.key)
        mac.update(view[:-32])
        return hmac.compare_digest(mac.digest(), view[-32:])


@dataclass(frozen=True)
class Aead:
    """One way to seal a repository: a stable wire name and the cipher behind it.

    Attributes
    ----------
    name : str
        The wire name, stored as the config's ``encryption`` and a key file's ``aead``.
    cipher : type or None
        The AEAD class (``AESGCM`` or ``ChaCha20Poly1305``), or None for ``none``: no
        encryption, a keyed checksum only (:class:`PlainSealer`).
    """

    name: str
    cipher: _Cipher | None

    @property
    def encrypted(self) -> bool:
        """Whether objects sealed this way are encrypted."""
        return self.cipher is not None

    def sealer(self, key: bytes) -> AEADSealer | PlainSealer:
        """Return the sealer for ``key`` (32 bytes)."""
        if self.cipher is None:
            return PlainSealer(key)
        return AEADSealer(key, self.name)


#: Names no AEAD may take again. An entry is never removed: old repositories may still carry it.
RETIRED_AEADS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AeadTable:
    """The AEADs this release knows, by wire name; build it with :func:`build_aead_table`.

    Attributes
    ----------
    by_name : Mapping of str to Aead
    retired : frozenset of str
        Retired names, never assigned again.
    """

    by_name: Mapping[str, Aead]
    retired: frozenset[str]

    def from_name(self, name: str) -> Aead:
        """Return the AEAD with wire name ``name``.

        Raises
        ------
        ConfigError
            If the name is retired or unknown; the message lists the known names.
        """
        aead = self.by_name.get(name)
        if aead is not None:
            return aead
        if name in self.retired:
            raise ConfigError(f"encryption {name!r} is retired")
        raise ConfigError(f"unknown encryption {name!r}; known: {', '.join(self.by_name)}")


def build_aead_table(aeads: Iterable[Aead], retired: frozenset[str] = RETIRED_AEADS) -> AeadTable:
    """Index ``aeads`` by wire name, refusing any clash.

    Raises
    ------
    ConfigError
        If two entries share a name or an entry takes a retired name.
    """
    by_name: dict[str, Aead] = {}
    for aead in aeads:
        if aead.name in retired:
            raise ConfigError(f"AEAD name {aead.name!r} is retired and cannot be reused")
        if aead.name in by_name:
            raise ConfigError(f"duplicate AEAD name {aead.name!r}")
        by_name[aead.name] = aead
    return AeadTable(MappingProxyType(by_name), frozenset(retired))


#: Every way this release seals a repository. Built at import, so a clash fails every import.
AEAD_TABLE = build_aead_table(
    [
        Aead("aes-256-gcm", AESGCM),
        Aead("chacha20-poly1305", ChaCha20Poly1305),
        Aead("none", None),
    ]
)

#: Names accepted for a repository's ``encryption`` setting.
SEALERS: tuple[str, ...] = tuple(AEAD_TABLE.by_name)


def aead_from_name(name: str) -> Aead:
    """Return the AEAD with wire name ``name`` from :data:`AEAD_TABLE`.

    Raises
    ------
    ConfigError
        If the name is retired or unknown; the message lists the known names.
    """
    return AEAD_TABLE.from_name(name)


def make_sealer(name: str, key: bytes, retired: tuple[bytes, ...] = ()) -> AEADSealer | PlainSealer:
    """Return the sealer called ``name`` with ``key`` (and the ``retired`` keys it still opens with).

    Raises
    ------
    ConfigError
        If ``name`` is not in :data:`AEAD_TABLE`, or ``key`` is not 32 bytes for an AEAD.
    """
    sealer = aead_from_name(name).sealer(key)
    if retired and isinstance(sealer, AEADSealer):
        return replace(sealer, retired=retired)
    return sealer
