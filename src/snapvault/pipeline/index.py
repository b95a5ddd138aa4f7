"""The blob index: which pack holds each blob, and its serialised form.

Index file (before compression and sealing)::

    b"SVI1" | pack_count (u32) | pack_count * (pack_id (32) | count (u32) | count * entry)
    entry = type (u8) | id (32) | offset (u32) | length (u32) | raw_length (u32)

The file is one zstd frame that declares its content size, then sealed with
``ad = b"snapvault index"``. Every backup session writes its own index files; nobody rewrites
one.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import zstandard

from snapvault.errors import IntegrityError
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.pack import PackEntry

__all__ = ["INDEX_AD", "MAX_INDEX", "MAX_INDEX_ENTRIES", "BlobLocation", "Index", "decode_index", "encode_index"]

INDEX_AD = b"snapvault index"
_MAGIC = b"SVI1"
_U32 = struct.Struct("<I")
_PACK = struct.Struct("<32sI")
_ENTRY = struct.Struct("<B32sIII")
#: Most bytes an index file may decompress to. Its zstd frame must declare its size, which is
#: checked before anything is decompressed.
MAX_INDEX = 32 << 20
#: Most blob entries a writer puts in one index file (22.5 MB decompressed, under MAX_INDEX).
MAX_INDEX_ENTRIES = 500_000


class BlobLocation(NamedTuple):
    """Where a blob is stored."""

    pack_id: bytes
    type: BlobType
    offset: int
    length: int
    raw_length: int


def encode_index(packs: Iterable[tuple[bytes, list[PackEntry]]]) -> bytes:
    """Serialise (pack_id, entries) pairs and compress them."""
    packs = list(packs)
    parts = [_MAGIC, _U32.pack(len(packs))]
    for pid, entries in packs:
        parts.append(_PACK.pack(pid, len(entries)))
        parts += [_ENTRY.pack(int(e.type), e.id, e.offset, e.length, e.raw_length) for e in entries]
    return zstandard.ZstdCompressor(level=3).compress(b"".join(parts))


def decode_index(data: bytes | memoryview) -> list[tuple[bytes, list[PackEntry]]]:
    """Invert :func:`encode_index`; raise :class:`IntegrityError` if malformed.

    The frame's declared size is checked against :data:`MAX_INDEX` before decompressing, so
    a small hostile file cannot make a reader allocate more. A pack ID or a blob ID listed
    twice in one file is refused: no writer does that, and repeated entries are how a tiny
    file could otherwise cost a reader time and memory out of proportion to its size.
    """
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as e:
        raise IntegrityError(f"index is not a zstd frame: {e}") from None
    if size < 0:
        raise IntegrityError("index frame does not declare its size")
    if size > MAX_INDEX:
        raise IntegrityError(f"index declares {size} bytes, over the format's limit of {MAX_INDEX}")
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as e:
        raise IntegrityError(f"index does not decompress: {e}") from None
    if len(raw) != size:
        raise IntegrityError("index does not decompress to its declared size")
    if raw[:4] != _MAGIC:
        raise IntegrityError("index has the wrong magic")
    try:
        (npacks,) = _U32.unpack_from(raw, 4)
        pos = 8
        out = []
        pack_ids: set[bytes] = set()
        blob_ids: set[bytes] = set()
        for _ in range(npacks):
            pid, n = _PACK.unpack_from(raw, pos)
            pos += _PACK.size
            if pid in pack_ids:
                raise IntegrityError(f"index lists pack {pid.hex()[:16]} twice")
            pack_ids.add(pid)
            if pos + n * _ENTRY.size > len(raw):
                raise IntegrityError("index is truncated")
            entries = []
            for t, bid, off, length, rawlen in _ENTRY.iter_unpack(raw[pos : pos + n * _ENTRY.size]):
                if bid in blob_ids:
                    raise IntegrityError(f"index lists blob {bid.hex()[:16]} twice")
                blob_ids.add(bid)
                entries.append(PackEntry(BlobType(t), bid, off, length, rawlen))
            pos += n * _ENTRY.size
            out.append((pid, entries))
    except (struct.error, ValueError) as e:
        if isinstance(e, IntegrityError):
            raise
        raise IntegrityError(f"index is malformed: {e}") from None
    if pos != len(raw):
        raise IntegrityError("index has trailing bytes")
    return out


_M32 = (1 << 32) - 1
_TYPES = {int(t): t for t in BlobType}


class Index:
    """In-memory map from blob ID to location. Adding the same blob twice keeps the first
    (unless the first is in a pack to avoid and the second is not).

    Each location is held as one integer (pack number, type, offset, length and raw length
    packed into bit fields) rather than a tuple of objects: 158 bytes a blob instead of 290
    (measured with 200,000 blobs), which is most of a backup's memory for millions of small
    files. Lookups
    (``in``) cost the same; :meth:`get` unpacks a :class:`BlobLocation` on demand.
    """

    def __init__(self, excluded: frozenset[bytes] = frozenset(), avoid: frozenset[bytes] = frozenset()) -> None:
        self._blobs: dict[bytes, int] = {}
        self._pack_ids: list[bytes] = []
        self._pack_numbers: dict[bytes, int] = {}
        #: Packs whose blobs are never added (quarantined as damaged).
        self.excluded = excluded
        #: Packs a prune has marked for deletion: their blobs stay readable, but a copy in
        #: another pack is preferred, and :meth:`reusable` is false for a blob found only there.
        self.avoid = avoid

    def __len__(self) -> int:
        return len(self._blobs)

    def __contains__(self, bid: object) -> bool:
        return bid in self._blobs

    def _unpack(self, v: int) -> BlobLocation:
        return BlobLocation(
            self._pack_ids[v >> 104], _TYPES[(v >> 96) & 0xFF], (v >> 64) & _M32, (v >> 32) & _M32, v & _M32
        )

    def get(self, bid: bytes) -> BlobLocation | None:
        """Return the blob's location, or None."""
        v = self._blobs.get(bid)
        return None if v is None else self._unpack(v)

    def add_pack(self, pack_id: bytes, entries: Iterable[PackEntry]) -> None:
        """Record the blobs of one pack (ignored for an excluded pack)."""
        if pack_id in self.excluded:
            return
        number = self._pack_numbers.get(pack_id)
        if number is None:
            number = self._pack_numbers[pack_id] = len(self._pack_ids)
            self._pack_ids.append(pack_id)
        base = number << 104
        blobs = self._blobs
        # A copy outside the marked packs replaces one inside them, so reads and dedup go to
        # the pack that stays.
        displace = bool(self.avoid) and pack_id not in self.avoid
        for e in entries:
            old = blobs.get(e.id)
            if old is None or (displace and self._pack_ids[old >> 104] in self.avoid):
                if (e.offset | e.length | e.raw_length) >> 32 or e.offset < 0 or e.length < 0 or e.raw_length < 0:
                    # The index format stores these as u32; a pack never comes near that.
                    raise IntegrityError(f"blob {e.id.hex()} has a location out of range")
                blobs[e.id] = base | (int(e.type) << 96) | (e.offset << 64) | (e.length << 32) | e.raw_length

    def reusable(self, bid: bytes) -> bool:
        """Whether a writer may reference blob ``bid`` without storing it: indexed, and in a
        pack no prune has marked for deletion."""
        v = self._blobs.get(bid)
        return v is not None and (not self.avoid or self._pack_ids[v >> 104] not in self.avoid)

    @property
    def packs(self) -> frozenset[bytes]:
        """IDs of every pack the index knows."""
        return frozenset(self._pack_ids)

    def items(self) -> Iterator[tuple[bytes, BlobLocation]]:
        """Iterate over (blob_id, location)."""
        unpack = self._unpack
        return ((bid, unpack(v)) for bid, v in self._blobs.items())
