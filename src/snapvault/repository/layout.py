"""Where each object of a repository lives in its store: the key layout (docs/format.md, "Layout").

::

    config                 the repository's plain JSON config; the only key not named by a hash
    keys/<hex>             key files
    data/<hh>/<hex>        packs; <hh> is the first two hex digits of the pack's name
    index/<hex>            index files
    snapshots/<hex>        snapshot manifests (the commit point of a backup)
    quarantine/<hex>       packs a failed read-back showed damaged, never reused
    policies/<hex>         policy records
    runs/<hex>             run records

Every name but ``config`` is the hex BLAKE3 of the object's stored bytes. This module is the one
place that spells these keys; everything else asks it.
"""

from __future__ import annotations

__all__ = [
    "CONFIG",
    "DATA",
    "FOLDERS",
    "INDEX",
    "KEYS",
    "POLICIES",
    "QUARANTINE",
    "RUNS",
    "SNAPSHOTS",
    "name_of",
    "object_key",
    "pack_key",
    "snapshot_key",
]

CONFIG = "config"
KEYS = "keys"
DATA = "data"
INDEX = "index"
SNAPSHOTS = "snapshots"
QUARANTINE = "quarantine"
POLICIES = "policies"
RUNS = "runs"

#: Every folder of content-named objects.
FOLDERS = (KEYS, DATA, INDEX, SNAPSHOTS, QUARANTINE, POLICIES, RUNS)


def object_key(folder: str, name: str) -> str:
    """Key of the object ``name`` in a flat folder (every folder but ``data``)."""
    return f"{folder}/{name}"


def pack_key(pack_id: bytes | str) -> str:
    """Key of a pack, from its ID (bytes) or its name (hex)."""
    h = pack_id.hex() if isinstance(pack_id, bytes) else pack_id
    return f"{DATA}/{h[:2]}/{h}"


def snapshot_key(snapshot_id: str) -> str:
    """Key of the manifest of a snapshot."""
    return object_key(SNAPSHOTS, snapshot_id)


def name_of(key: str) -> str:
    """The name of an object (its hash, for every key but ``config``), from its key."""
    return key.rsplit("/", 1)[-1]
