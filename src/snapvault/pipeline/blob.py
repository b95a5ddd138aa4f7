"""Blob encoding: plaintext -> codec frame -> sealed bytes, and back with verification."""

from __future__ import annotations

from snapvault.errors import IntegrityError
from snapvault.pipeline.codecs import Codec, decode, encode
from snapvault.pipeline.crypto import AEADSealer, PlainSealer
from snapvault.pipeline.ids import BlobType, blob_id
from snapvault.pipeline.pack import blob_ad

__all__ = ["MAX_BLOB", "open_blob", "seal_blob"]

#: Upper bound on a blob's plaintext; a larger declared size is damage or hostility.
MAX_BLOB = 256 << 20


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

    Raises
    ------
    IntegrityError
        If authentication fails, the frame is bad, or the plaintext's keyed hash is not ``bid``.
    """
    frame = sealer.open(sealed, blob_ad(btype, bid))
    plain = decode(frame, max_size=MAX_BLOB if raw_length is None else raw_length)
    if raw_length is not None and len(plain) != raw_length:
        raise IntegrityError("blob length differs from the index", blob_id=bid.hex())
    if blob_id(id_key, plain) != bid:
        raise IntegrityError("blob content does not match its ID", blob_id=bid.hex())
    return plain
