"""A drill: a real recovery from one site, timed, with every restored byte checked.

Steps, each timed: open the site's repository with its own credentials; check the drilled
snapshot's structure (and with ``verify_packs`` read every pack it uses); restore the
configured sample, or the whole snapshot, into a fresh folder; read every restored file back
and compare it, chunk by chunk, with the content IDs the snapshot records. The throughput of
the restore gives the full-restore estimate: open and check, plus the snapshot's bytes at that
throughput. Any damage fails the drill with the snapshot, the path and the pack it found.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from snapvault.dr.model import DrillRecord, PlanSpec, Site, covers
from snapvault.errors import ConfigError, DrillFailed, IntegrityError, SnapshotNotFound, SnapvaultError
from snapvault.handle import Repository
from snapvault.maintenance.browse import walk_snapshot
from snapvault.maintenance.check import check_snapshot
from snapvault.repository.manifest import Manifest
from snapvault.restore.restorer import Restorer
from snapvault.restore.writer import local_target

__all__ = ["drill_site", "latest_covered"]

# Characters with a meaning in include patterns: a file whose path holds one is not sampled
# (an include pattern naming it exactly could match others, or none).
_SPECIAL = set("*?[]!#\\")


def latest_covered(plan: PlanSpec, snapshots: list[Manifest]) -> Manifest | None:
    """The snapshot a drill restores: the newest of ``rto_policy``, else the newest covered."""
    if plan.rto_policy is not None:
        chosen = [m for m in snapshots if m.policy == plan.rto_policy]
    else:
        chosen = [m for m in snapshots if covers(plan, m.policy, m.tags)]
    return max(chosen, key=lambda m: (m.time, m.id), default=None)


def drill_site(
    plan: PlanSpec,
    site: Site,
    opener: Callable[[Site], Repository],
    *,
    now: datetime,
    clock: Callable[[], float],
    callback: Any = None,
    target_options: dict[str, Any] | None = None,
) -> DrillRecord:
    """Drill ``site``; the record says what was measured and whether it passed (never raises
    for damage or an unreachable site: that is the drill's finding). ``callback`` (an fsspec
    Callback) is told the bytes to restore and each restored stretch."""
    base: dict[str, Any] = {"id": uuid.uuid4().hex, "plan": plan.name, "site": site.name, "time": now}
    objective = plan.rto_of(site)
    rto_objective = None if objective is None else objective.total_seconds()
    t0 = clock()
    try:
        repo = opener(site)
        m = latest_covered(plan, repo.snapshots())
        if m is None:
            raise SnapshotNotFound(f"site {site.name!r} holds no snapshot plan {plan.name!r} covers")
    except SnapvaultError as e:
        return DrillRecord(**base, ok=False, error=_line(e), error_type=type(e).__name__, rto_objective_s=rto_objective)
    setup = clock() - t0
    found: dict[str, Any] = {"snapshot_id": m.id, "snapshot_time": m.time, "snapshot_bytes": m.stats.total_bytes}
    try:
        t1 = clock()
        report = check_snapshot(repo, m.id, read_data=plan.drill_settings.verify_packs)
        if report.problems:
            p = report.problems[0]
            more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise DrillFailed(
                f"snapshot {m.id[:8]} at site {site.name!r}: {p.kind}: {p.message}"
                + (f", path {p.path}" if p.path else "")
                + (f", pack {p.pack}" if p.pack else "")
                + more,
                snapshot_id=m.id,
                path=p.path,
                pack_id=p.pack,
            )
        check_s = clock() - t1
        files, sample = _sample(plan, repo, m, now)
        place = _Place(plan, base["id"], target_options)
        try:
            t2 = clock()
            result = Restorer(repo).restore(
                m,
                place.target,
                target_options=place.options or None,
                include=[f"/{p}" for p in files] if sample != "all" else (),
                callback=callback,
            )
            restore_s = clock() - t2
            bad = next((e for e in result.errors if e.kind != "skipped"), None)
            if bad is not None:
                raise DrillFailed(
                    f"snapshot {m.id[:8]} at site {site.name!r}: {bad.path}: {bad.error}"
                    + (f", pack {bad.pack_id}" if bad.pack_id else ""),
                    snapshot_id=m.id,
                    path=bad.path,
                    pack_id=bad.pack_id,
                )
            t3 = clock()
            checked, nbytes = _verify(repo, m, place.open, None if sample == "all" else set(files))
            verify_s = clock() - t3
        finally:
            place.remove()
    except SnapvaultError as e:
        where: dict[str, Any] = {"path": getattr(e, "path", None), "pack_id": getattr(e, "pack_id", None)}
        return DrillRecord(
            **base,
            **found,
            **where,
            ok=False,
            error=_line(e),
            error_type=type(e).__name__,
            setup_s=setup,
            rto_objective_s=rto_objective,
        )
    throughput = nbytes / restore_s if restore_s > 0 and nbytes else None
    estimate = None
    if throughput:
        estimate = setup + check_s + m.stats.total_bytes / throughput
    elif m.stats.total_bytes == 0:
        estimate = setup + check_s + restore_s
    return DrillRecord(
        **base,
        **found,
        ok=True,
        files_restored=checked,
        bytes_restored=nbytes,
        setup_s=setup,
        check_s=check_s,
        restore_s=restore_s,
        verify_s=verify_s,
        throughput_bps=throughput,
        rto_estimate_s=estimate,
        rto_objective_s=rto_objective,
        sample=sample,
    )


def _line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _sample(plan: PlanSpec, repo: Repository, m: Manifest, now: datetime) -> tuple[list[str], str]:
    """The files to restore (snapshot-relative paths) and how they were chosen."""
    settings = plan.drill_settings
    if settings.sample_files is None and settings.sample_percent is None:
        return [], "all"
    files = [rel for rel, node in walk_snapshot(repo, m) if node.type == "file" and not _SPECIAL & set(rel)]
    if settings.sample_files is not None:
        k, label = min(settings.sample_files, len(files)), f"{settings.sample_files} files"
    else:
        assert settings.sample_percent is not None
        k = max(1, round(len(files) * settings.sample_percent / 100)) if files else 0
        label = f"{settings.sample_percent:g}% of files"
    # Seeded by the snapshot and the drill's time: a repeated drill may pick other files, and
    # the same call picks the same ones.
    rng = random.Random(f"{m.id}{now.isoformat()}")
    return sorted(rng.sample(files, k)), label


class _Place:
    """Where one drill restores: a fresh folder below the drill target (a local directory, by
    default a temporary one, or an fsspec URL), read back and removed after."""

    def __init__(self, plan: PlanSpec, drill_id: str, options: dict[str, Any] | None) -> None:
        target = plan.drill_settings.target
        self.options = dict(options or {})
        name = f"drill-{plan.name}-{drill_id[:12]}"
        if target is None or local_target(target) is not None:
            parent = None if target is None else local_target(target)
            if parent is not None:
                Path(parent).mkdir(parents=True, exist_ok=True)
            self.target = tempfile.mkdtemp(prefix=f"{name}-", dir=parent)
            self._fs: Any = None
            self._root = self.target
        else:
            self.target = f"{target.rstrip('/')}/{name}"
            import fsspec  # a drill into a local folder never needs it

            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.target, **self.options)
            except (ImportError, ValueError, TypeError) as e:
                raise ConfigError(f"drill target {target}: {e}") from None

    def open(self, rel: str) -> IO[bytes]:
        if self._fs is None:
            return open(os.path.join(self._root, rel), "rb")
        f: IO[bytes] = self._fs.open(f"{self._root}/{rel}", "rb")
        return f

    def remove(self) -> None:
        if self._fs is None:
            shutil.rmtree(self._root, ignore_errors=True)
            return
        with contextlib.suppress(OSError, ValueError):
            self._fs.rm(self._root, recursive=True)


def _verify(
    repo: Repository, m: Manifest, opener: Callable[[str], IO[bytes]], only: set[str] | None
) -> tuple[int, int]:
    """Read back each restored file and compare its pieces with the snapshot's chunk IDs;
    return (files, bytes). A file missing or different is DrillFailed naming it."""
    files = nbytes = 0
    for rel, node in walk_snapshot(repo, m):
        if node.type != "file" or (only is not None and rel not in only):
            continue
        try:
            with opener(rel) as f:
                for i, chunk_id in enumerate(node.content):
                    bid = bytes.fromhex(chunk_id)
                    piece = f.read(repo.locate(bid).raw_length)
                    if repo.blob_id(piece) != bid:
                        raise DrillFailed(
                            f"snapshot {m.id[:8]}: restored {rel} differs from the snapshot in chunk {i}",
                            snapshot_id=m.id,
                            path=rel,
                            blob_id=chunk_id,
                        )
                    nbytes += len(piece)
                if f.read(1):
                    raise DrillFailed(f"snapshot {m.id[:8]}: restored {rel} is longer than stored", path=rel)
        except OSError as e:
            raise DrillFailed(f"snapshot {m.id[:8]}: restored {rel} cannot be read: {e}", path=rel) from None
        except IntegrityError:
            raise
        files += 1
    return files, nbytes


def default_clock() -> float:
    """Seconds from a monotonic clock (a drill measures durations, never the date)."""
    return time.monotonic()
