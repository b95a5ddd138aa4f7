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
    deletions/<hex>        a prune's deletion marks
    writers/<hex>          running writers' records
    dr-plans/<hex>         DR plan records
    dr-failovers/<hex>     DR failover records
    dr-drills/<hex>        DR drill records
    dr-replications/<hex>  DR replication records

Every name but ``config`` is the hex BLAKE3 of the object's stored bytes. This module is the one
place that spells these keys; everything else asks it.
"""

from __future__ import annotations

__all__ = [
    "CONFIG",
    "DATA",
    "DELETIONS",
    "DR_DRILLS",
    "DR_FAILOVERS",
    "DR_PLANS",
    "DR_REPLICATIONS",
    "FOLDERS",
    "INDEX",
    "KEYS",
    "POLICIES",
    "QUARANTINE",
    "RUNS",
    "SNAPSHOTS",
    "WRITERS",
    "max_size",
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
DELETIONS = "deletions"
WRITERS = "writers"
DR_PLANS = "dr-plans"
DR_FAILOVERS = "dr-failovers"
DR_DRILLS = "dr-drills"
DR_REPLICATIONS = "dr-replications"

#: Every folder of content-named objects.
FOLDERS = (
    KEYS,
    DATA,
    INDEX,
    SNAPSHOTS,
    QUARANTINE,
    POLICIES,
    RUNS,
    DELETIONS,
    WRITERS,
    DR_PLANS,
    DR_FAILOVERS,
    DR_DRILLS,
    DR_REPLICATIONS,
)

# The most bytes a stored object of each kind may take (docs/format.md, "Limits"). A reader
# fetches at most one byte more and refuses a longer object unopened, so no object can make a
# reader allocate more than its kind allows. Packs are read by range, never whole, except by
# check --read-data, which reads each pack once. The index limit is the decompressed limit
# (32 MiB) plus room for an incompressible frame and the envelope.
_MAX_SIZE = {
    CONFIG: 64 << 10,
    KEYS: 64 << 10,
    INDEX: 33 << 20,
    SNAPSHOTS: 16 << 20,
    QUARANTINE: 16 << 20,
    POLICIES: 1 << 20,
    RUNS: 1 << 20,
    DELETIONS: 16 << 20,
    WRITERS: 64 << 10,
    DR_PLANS: 1 << 20,
    DR_FAILOVERS: 1 << 20,
    DR_DRILLS: 1 << 20,
    DR_REPLICATIONS: 1 << 20,
}


def max_size(key: str) -> int | None:
    """The most bytes the object at ``key`` may take (None for a pack: not read whole)."""
    return _MAX_SIZE.get(key.split("/", 1)[0])


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
