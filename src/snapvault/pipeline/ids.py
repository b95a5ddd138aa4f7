"""Keyed content IDs.

A blob ID is BLAKE3 in keyed mode over the blob's plaintext, with a 32-byte key that belongs
to the repository. Without the key nobody can compute the ID of a known file, so stored IDs
never equal a plaintext hash and do not reveal which known files a repository holds.
"""

from __future__ import annotations

import enum

import blake3

__all__ = ["BLOB_TYPES", "ID_SIZE", "BlobType", "blob_hasher", "blob_id", "derive_key", "object_hash", "object_hasher"]

ID_SIZE = 32

# Inputs above this size are hashed with BLAKE3's own threads; below it the start-up costs more.
_MULTITHREAD_FROM = 4 << 20


class BlobType(enum.IntEnum):
    """What a blob holds. The values are written to disk and never reused."""

    DATA = 0
    TREE = 1


#: Every blob type, indexed by its value (the values are 0, 1, ...): ``BLOB_TYPES[t]`` is
#: several times faster than ``BlobType(t)`` for the hundreds of thousands of entries an index
#: decode or a pack header parse turns into :class:`BlobType`.
BLOB_TYPES: tuple[BlobType, ...] = tuple(sorted(BlobType))
assert all(t == i for i, t in enumerate(BLOB_TYPES))


def blob_id(key: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """Return the 32-byte keyed ID of ``data``."""
    threads = blake3.blake3.AUTO if len(data) >= _MULTITHREAD_FROM else 1
    return blake3.blake3(data, key=key, max_threads=threads).digest()


def blob_hasher(key: bytes) -> blake3.blake3:
    """An incremental :func:`blob_id`: ``update`` with the plaintext in order, then ``digest``."""
    return blake3.blake3(key=key)


def object_hash(data: bytes | bytearray | memoryview) -> bytes:
    """Unkeyed BLAKE3 of stored (already sealed) bytes; names packs, indexes and snapshots."""
    return blake3.blake3(data).digest()


def object_hasher() -> blake3.blake3:
    """A running :func:`object_hash`: ``update`` it with the bytes in order, then ``digest``."""
    return blake3.blake3()


def derive_key(context: str, material: bytes) -> bytes:
    """Derive a 32-byte sub-key for ``context`` from key ``material`` (BLAKE3 derive-key mode)."""
    return blake3.blake3(material, derive_key_context=context).digest()
