"""Pack files: many sealed blobs, then a sealed header that lists them.

Layout (all integers little-endian)::

    blob_0 | blob_1 | ... | blob_n-1 | header | header_length (u32) | b"SVP1"

    blob_i  = seal(codec_frame(plaintext_i), ad = type_i (u8) | id_i (32 bytes))
    header  = seal(plain_header, ad = b"snapvault pack header")
    plain_header = version (u8 = 1) | count (u32) | count * entry
    entry   = type (u8) | id (32) | offset (u32) | length (u32) | raw_length (u32)

``length`` is the sealed size in the pack, ``raw_length`` the plaintext size. A pack's name is
the BLAKE3 hash of its bytes, so ``check`` can tell a damaged pack without any key.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from snapvault.errors import IntegrityError
from snapvault.pipeline.crypto import AEADSealer, PlainSealer
from snapvault.pipeline.ids import BLOB_TYPES, ID_SIZE, BlobType, object_hash

__all__ = [
    "MAX_HEADER",
    "MAX_PACK_BLOBS",
    "PACK_MAGIC",
    "PackEntry",
    "PackWriter",
    "blob_ad",
    "header_length",
    "pack_tail",
    "parse_pack",
    "read_header",
]

PACK_MAGIC = b"SVP1"
_HEADER_VERSION = 1
_TRAILER = struct.Struct("<I4s")
_ENTRY = struct.Struct("<B32sIII")
_COUNT = struct.Struct("<BI")
HEADER_AD = b"snapvault pack header"
#: Bytes at the end of a pack that give the header's length; read these first.
TRAILER_SIZE = _TRAILER.size
#: Most blobs a writer puts in one pack (a header of 4.5 MB).
MAX_PACK_BLOBS = 100_000
#: Most bytes a stored (sealed) pack header may take; a reader refuses a longer one before
#: reading it.
MAX_HEADER = 16 << 20
# The smallest stored blob: one byte of codec frame and an unencrypted repository's 32-byte MAC.
_MIN_SEALED_BLOB = 1 + 32


class PackEntry(NamedTuple):
    """Where one blob sits in a pack.

    A named tuple, not a dataclass: an index holds one per blob and a repository open builds
    hundreds of thousands, and a tuple is built several times faster than a frozen dataclass.
    """

    type: BlobType
    id: bytes
    offset: int
    length: int
    raw_length: int


def blob_ad(btype: BlobType, bid: bytes) -> bytes:
    """Associated data that binds a sealed blob to its type and ID."""
    return bytes([int(btype)]) + bid


class PackWriter:
    """Collects sealed blobs into one pack; not thread-safe."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._entries: list[PackEntry] = []

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def count(self) -> int:
        """How many blobs have been added."""
        return len(self._entries)

    def add(self, btype: BlobType, bid: bytes, sealed: bytes | bytearray | memoryview, raw_length: int) -> None:
        """Append one sealed blob."""
        self._entries.append(PackEntry(btype, bid, len(self._buf), len(sealed), raw_length))
        self._buf += sealed

    def finish(
        self, sealer: AEADSealer | PlainSealer, random: Callable[[int], bytes]
    ) -> tuple[bytes, bytearray, list[PackEntry]]:
        """Seal the header and return ``(pack_id, pack_bytes, entries)``.

        The bytes are the writer's own buffer, not a copy (a pack is 16 MiB); the writer must
        not be used afterwards.
        """
        self._buf += pack_tail(sealer, self._entries, random)
        data = self._buf
        return object_hash(data), data, self._entries


def pack_tail(sealer: AEADSealer | PlainSealer, entries: list[PackEntry], random: Callable[[int], bytes]) -> bytes:
    """The sealed header and trailer that end a pack holding ``entries``."""
    parts = [_COUNT.pack(_HEADER_VERSION, len(entries))]
    parts += [_ENTRY.pack(int(e.type), e.id, e.offset, e.length, e.raw_length) for e in entries]
    header = sealer.seal(b"".join(parts), HEADER_AD, random=random(28))
    return header + _TRAILER.pack(len(header), PACK_MAGIC)


def header_length(tail: bytes | memoryview, pack_size: int) -> int:
    """The sealed header's length, from a pack's last bytes (at least its trailer).

    Raises :class:`IntegrityError` for a bad trailer, or a length over :data:`MAX_HEADER` or
    the pack's size, so a reader knows what it may fetch before it fetches it.
    """
    if len(tail) < TRAILER_SIZE or pack_size < TRAILER_SIZE:
        raise IntegrityError("pack is too short to hold a header")
    hlen, magic = _TRAILER.unpack(bytes(tail[-TRAILER_SIZE:]))
    if magic != PACK_MAGIC:
        raise IntegrityError("pack trailer has the wrong magic")
    if hlen > MAX_HEADER:
        raise IntegrityError(f"pack header is {hlen} bytes, over the format's limit of {MAX_HEADER}")
    if hlen + TRAILER_SIZE > pack_size:
        raise IntegrityError("pack header length is out of range")
    return int(hlen)


def read_header(sealer: AEADSealer | PlainSealer, tail: bytes | memoryview, pack_size: int) -> list[PackEntry]:
    """Parse the header from the last bytes of a pack.

    ``tail`` must hold at least the header and trailer; ``pack_size`` is the whole pack's
    length. Raises :class:`IntegrityError` on any inconsistency.
    """
    hlen = header_length(tail, pack_size)
    if hlen + TRAILER_SIZE > min(len(tail), pack_size):
        raise IntegrityError("pack header length is out of range")
    start = len(tail) - TRAILER_SIZE - hlen
    plain = sealer.open(tail[start : len(tail) - TRAILER_SIZE], HEADER_AD)
    if len(plain) < _COUNT.size:
        raise IntegrityError("pack header is truncated")
    version, count = _COUNT.unpack_from(plain)
    if version != _HEADER_VERSION:
        raise IntegrityError(f"unknown pack header version {version}")
    if len(plain) != _COUNT.size + count * _ENTRY.size:
        raise IntegrityError("pack header length does not match its entry count")
    body_end = pack_size - TRAILER_SIZE - hlen
    entries = []
    # Writers append blobs one after another, so entries are in offset order and never
    # overlap; a header that says otherwise is damaged or hostile.
    end = 0
    for i, (t, bid, off, length, raw) in enumerate(_ENTRY.iter_unpack(memoryview(plain)[_COUNT.size :])):
        if t >= len(BLOB_TYPES) or off < end or length < _MIN_SEALED_BLOB or off + length > body_end:
            raise IntegrityError(f"pack header entry {i} is out of range")
        end = off + length
        entries.append(PackEntry(BLOB_TYPES[t], bid, off, length, raw))
    return entries


def parse_pack(sealer: AEADSealer | PlainSealer, data: bytes | memoryview) -> list[PackEntry]:
    """Parse the header of a whole pack held in memory."""
    return read_header(sealer, data, len(data))


assert _ENTRY.size == 1 + ID_SIZE + 12
