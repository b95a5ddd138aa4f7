"""The rewrite after a key rotation: re-seal everything a retired key sealed, then drop it.

A rotation (:func:`snapvault.repository.keys.rotate_key`) gives the repository a new
encryption key at once and keeps the old ones as *retired*: they still open what they sealed,
and nothing new is sealed with them. :func:`rewrite` finishes the job, resumably:

1. Packs whose header a retired key sealed go through the prune machinery with reason
   ``rekey``: marked, their live blobs copied into new packs (sealed with the current key),
   then deleted once no writer that could use them is running (docs/design.md, "Prune").
2. Index files, manifests, policy, run and quarantine records and deletion marks that a
   retired key sealed are written again under the current key (create-only, new names), then
   the old objects are deleted. A re-sealed manifest has a new snapshot ID; it records the old
   one as ``rekeyed_from``, and ``parent``/``base``/``copied_from`` fields naming a snapshot
   re-sealed in the same run are updated.
3. When nothing sealed with a retired key is left, no writer is running, and the packs are
   gone, the master keys are re-wrapped without the retired keys: the old key then opens
   nothing in the repository. Otherwise the result says what is left; run it again.

Every step is create-first, delete-after, so an interrupted rewrite is finished by the next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from snapvault.errors import ConfigError, IntegrityError, SnapvaultError
from snapvault.maintenance.prune import PruneResult, prune
from snapvault.pipeline.crypto import AEADSealer
from snapvault.pipeline.index import INDEX_AD
from snapvault.repository import layout
from snapvault.repository.keys import KeyInfo, drop_retired_keys
from snapvault.repository.lifecycle import DELETION_AD, read_writers
from snapvault.repository.manifest import Manifest
from snapvault.repository.repo import SNAPSHOT_AD, get_named

if TYPE_CHECKING:
    from snapvault.repository.repo import Repository

__all__ = ["RekeyResult", "rewrite"]

# The sealed record kinds besides manifests, by folder (their associated data).
_RECORDS = {
    layout.INDEX: INDEX_AD,
    layout.POLICIES: b"snapvault policy",
    layout.RUNS: b"snapvault run",
    layout.QUARANTINE: b"snapvault quarantine",
    layout.DELETIONS: DELETION_AD,
}


@dataclass(frozen=True)
class RekeyResult:
    """What one rewrite run did, and whether the retired keys are gone."""

    packs_rekeyed: int
    objects_resealed: int
    snapshots_renamed: dict[str, str]
    prune: PruneResult | None
    left: int
    finished: bool
    key: KeyInfo | None = None
    notes: list[str] = field(default_factory=list)


def rewrite(
    repo: Repository, password: str | bytes, *, now: datetime, writer_timeout: timedelta = timedelta(hours=1)
) -> RekeyResult:
    """Re-seal what retired keys sealed, and drop them once nothing needs them.

    Parameters
    ----------
    repo : Repository
        An encrypted repository whose master keys carry retired keys (after a rotation).
    password : str or bytes
        The password of the key file in use: the key file is re-wrapped without the retired
        keys at the end.
    now : datetime
        For the prune's writer records and the new key file's creation time.

    Raises
    ------
    ConfigError
        If the repository is unencrypted.
    WrongPassword
        If ``password`` does not open the key file in use (checked before anything is written
        only at the last step; earlier steps need no password).
    """
    sealer = repo.sealer
    if not isinstance(sealer, AEADSealer):
        raise ConfigError("an unencrypted repository has no key to rotate")
    notes: list[str] = []
    if not repo.master_keys.retired_keys:
        return RekeyResult(0, 0, {}, None, 0, True, notes=["no retired key: nothing to rewrite"])
    current = sealer.current_only()
    old_packs = _old_packs(repo, current)
    result = prune(repo, now=now, max_repack=1.0, writer_timeout=writer_timeout, rekey=frozenset(old_packs))
    resealed = 0
    for folder, ad in _RECORDS.items():
        resealed += _reseal_folder(repo, current, folder, ad)
    renamed = _reseal_manifests(repo, current)
    resealed += len(renamed)
    left = len(_old_packs(repo, current)) + sum(
        _count_old(repo, current, folder, ad) for folder, ad in [*_RECORDS.items(), (layout.SNAPSHOTS, SNAPSHOT_AD)]
    )
    live = [w for w in read_writers(repo) if w.time >= now - writer_timeout]
    key = None
    if left:
        notes.append(f"{left} object(s) still sealed with a retired key (a prune waits for writers): run it again")
    elif live:
        notes.append(f"{len(live)} writer(s) running may still hold the retired key: run it again when they end")
    else:
        key = drop_retired_keys(repo, password, now=now)
    return RekeyResult(len(old_packs), resealed, renamed, result, left, key is not None, key, notes)


def _opens(current: AEADSealer, stored: bytes, ad: bytes) -> bool:
    try:
        current.open(stored, ad)
    except IntegrityError:
        return False
    return True


def _old_packs(repo: Repository, current: AEADSealer) -> set[bytes]:
    """Packs whose header the current key does not open (a retired key sealed them)."""
    out = set()
    for name, size in repo.packs():
        pid = bytes.fromhex(name)
        try:
            repo.read_pack_header(pid, size, sealer=current)
        except IntegrityError:
            out.add(pid)
    return out


def _count_old(repo: Repository, current: AEADSealer, folder: str, ad: bytes) -> int:
    n = 0
    for key in repo.list_keys(folder):
        try:
            if not _opens(current, get_named(repo.store, key), ad):
                n += 1
        except SnapvaultError:
            continue  # removed meanwhile, or damaged: check reports it
    return n


def _reseal_folder(repo: Repository, current: AEADSealer, folder: str, ad: bytes) -> int:
    """Write each object of ``folder`` that a retired key sealed again under the current key."""
    n = 0
    for key in repo.list_keys(folder):
        try:
            stored = get_named(repo.store, key)
        except SnapvaultError:
            continue
        if _opens(current, stored, ad):
            continue
        plain = repo.sealer.open(stored, ad)
        repo.write_sealed(folder, plain, ad)
        repo.delete_key(key)
        n += 1
    return n


def _reseal_manifests(repo: Repository, current: AEADSealer) -> dict[str, str]:
    """Re-seal manifests (oldest first), recording ``rekeyed_from``; return old -> new IDs."""
    renamed: dict[str, str] = {}
    old: list[Manifest] = []
    for m in repo.snapshots():
        stored = get_named(repo.store, layout.snapshot_key(m.id))
        if _opens(current, stored, SNAPSHOT_AD):
            previous = (m.model_extra or {}).get("rekeyed_from")
            if isinstance(previous, str):
                renamed[previous] = m.id
            continue
        old.append(m)
    for m in old:
        if m.id in renamed:
            # Re-sealed by an interrupted run that did not get to delete the original.
            repo.delete_snapshot(m.id)
            continue
        update: dict[str, object] = {"rekeyed_from": m.id}
        for name in ("parent", "base", "copied_from"):
            value = getattr(m, name, None)
            if isinstance(value, str) and value in renamed:
                update[name] = renamed[value]
        doc = json.loads(m.model_dump_json())
        doc.update(update)
        doc.pop("id", None)
        new = repo.save_manifest(Manifest.model_validate(doc))
        renamed[m.id] = new.id
        repo.delete_snapshot(m.id)
    return renamed
