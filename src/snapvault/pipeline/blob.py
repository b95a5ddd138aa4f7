"""Blob encoding: plaintext -> codec frame -> sealed bytes, and back with verification."""

from __future__ import annotations

from snapvault.errors import IntegrityError
from snapvault.pipeline.codecs import Codec, decode, decode_pieces, encode
from snapvault.pipeline.crypto import AEADSealer, PlainSealer
from snapvault.pipeline.ids import BlobType, blob_hasher, blob_id
from snapvault.pipeline.pack import blob_ad

__all__ = [
    "MAX_BLOB",
    "MAX_DATA_BLOB",
    "MAX_SEALED_OVERHEAD",
    "MAX_TREE_BLOB",
    "blob_limit",
    "blob_size_error",
    "open_blob",
    "open_frame",
    "seal_blob",
]

#: Upper bound on a data blob's plaintext: the largest chunk a chunker may be configured to cut.
MAX_DATA_BLOB = 16 << 20
#: Upper bound on a tree blob's plaintext (one directory; about 200,000 entries).
MAX_TREE_BLOB = 32 << 20
#: Upper bound on any blob's plaintext; a larger declared size is damage or hostility.
MAX_BLOB = max(MAX_DATA_BLOB, MAX_TREE_BLOB)
#: A stored blob is at most this much larger than its plaintext: one byte of codec wire ID (a
#: frame is compressed only when that makes it smaller) and the envelope's 44 bytes (salt,
#: nonce, tag; an unencrypted repository's 32-byte MAC is less).
MAX_SEALED_OVERHEAD = 1 + 44


def blob_limit(btype: BlobType) -> int:
    """The most plaintext bytes a blob of this type may hold."""
    return MAX_TREE_BLOB if btype is BlobType.TREE else MAX_DATA_BLOB


def blob_size_error(btype: BlobType, length: int, raw_length: int) -> str | None:
    """Why an index entry's sizes cannot be a blob's of type ``btype`` (None if they can).

    Checked before a blob is fetched or opened, so a hostile index cannot make a reader
    download, or decompression allocate, more than the format allows for one blob.
    """
    limit = blob_limit(btype)
    if raw_length > limit:
        return f"blob declares {raw_length} bytes, over the format's limit of {limit} for a {btype.name.lower()} blob"
    if length > limit + MAX_SEALED_OVERHEAD:
        return f"stored blob is {length} bytes, over the format's limit of {limit + MAX_SEALED_OVERHEAD}"
    return None


def seal_blob(
    sealer: AEADSealer | PlainSealer,
    codec: Codec,
    btype: BlobType,
    bid: bytes,
    plaintext: bytes | memoryview,
    random: bytes,
) -> bytearray:
    """Compress (where it pays) and seal one blob, binding its type and ID."""
    return sealer.seal_buffer(encode(codec, plaintext), blob_ad(btype, bid), random=random)


def open_blob(
    sealer: AEADSealer | PlainSealer,
    id_key: bytes,
    btype: BlobType,
    bid: bytes,
    sealed: bytes | memoryview,
    raw_length: int | None = None,
) -> bytes:
    """Unseal, decompress and verify a blob against its ID.

    Decompression never allocates more than ``raw_length`` (the index's plaintext size) or the
    format's limit for the type (:func:`blob_limit`), whichever is less; both are checked
    before anything is opened.

    Raises
    ------
    IntegrityError
        If authentication fails, a size is over its limit, the frame is bad, or the
        plaintext's keyed hash is not ``bid``.
    """
    limit = blob_limit(btype)
    error = blob_size_error(btype, len(sealed), 0 if raw_length is None else raw_length)
    if error is not None:
        raise IntegrityError(error, blob_id=bid.hex())
    frame = sealer.open(sealed, blob_ad(btype, bid))
    plain = decode(frame, max_size=limit if raw_length is None else raw_length)
    if raw_length is not None and len(plain) != raw_length:
        raise IntegrityError("blob length differs from the index", blob_id=bid.hex())
    if blob_id(id_key, plain) != bid:
        raise IntegrityError("blob content does not match its ID", blob_id=bid.hex())
    return plain


def open_frame(
    sealer: AEADSealer | PlainSealer,
    id_key: bytes,
    btype: BlobType,
    bid: bytes,
    sealed: bytes | memoryview,
    raw_length: int,
) -> bytes:
    """Unseal a blob and verify it against its ID, returning its codec frame (still compressed).

    What :func:`open_blob` checks, with the plaintext decompressed a piece at a time to be
    hashed and never held whole; :func:`~snapvault.pipeline.codecs.decode_pieces` gives it
    back from the frame as often as it is needed. A parent tree of 500,000 entries is about
    50 MB compressed against 135 MB of plaintext.

    Raises
    ------
    IntegrityError
        If authentication fails, a size is over its limit, the frame is bad, or the
        plaintext's keyed hash is not ``bid``.
    """
    error = blob_size_error(btype, len(sealed), raw_length)
    if error is not None:
        raise IntegrityError(error, blob_id=bid.hex())
    frame = sealer.open(sealed, blob_ad(btype, bid))
    hasher = blob_hasher(id_key)
    for piece in decode_pieces(frame, size=raw_length):
        hasher.update(piece)
    if hasher.digest() != bid:
        raise IntegrityError("blob content does not match its ID", blob_id=bid.hex())
    return bytes(frame)
