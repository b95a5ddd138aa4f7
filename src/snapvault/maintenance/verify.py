"""Reading back what a backup stored, to prove the store kept it."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from snapvault.errors import SnapvaultError
from snapvault.repository.manifest import Verification

__all__ = ["BlobReader", "verify_blobs"]


class BlobReader(Protocol):
    """What a read-back uses of a repository: one verified read per blob."""

    def read_blob(self, bid: bytes) -> bytes:
        """Fetch, decrypt and verify one blob."""
        ...


def verify_blobs(
    repo: BlobReader, blob_ids: Sequence[bytes], *, fraction: float, mode: str, rng: random.Random
) -> Verification:
    """Fetch, decrypt and verify ``fraction`` of ``blob_ids`` (all of them for 1.0).

    The sample is drawn with ``rng`` so a caller can make it repeatable.
    """
    ids = list(blob_ids)
    if fraction >= 1:
        chosen = ids
    else:
        k = min(len(ids), max(1, round(len(ids) * fraction))) if ids else 0
        chosen = rng.sample(ids, k)
    errors = []
    for bid in chosen:
        try:
            repo.read_blob(bid)
        except SnapvaultError as e:
            errors.append(f"{bid.hex()}: {e}")
    return Verification(mode=mode, blobs_added=len(ids), blobs_checked=len(chosen), ok=not errors, errors=errors)
