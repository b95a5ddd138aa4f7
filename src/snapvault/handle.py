"""The public repository handle, ``snapvault.Repository``.

It is the format-level :class:`snapvault.repository.repo.Repository` (open, read, write the
format) plus the conveniences that belong to the layers above it: :meth:`Repository.check`
(maintenance), :meth:`Repository.copy_snapshots` (maintenance) and the policy methods
(policy). Each is a thin call downward, so the repository layer itself never imports those
layers. :meth:`Repository.init` and :meth:`Repository.open` return this class when called on
it, and everything that opens a repository for users (the CLI) opens this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from snapvault.repository.repo import Repository as _FormatRepository

if TYPE_CHECKING:
    from snapvault.maintenance.catalog import Catalog
    from snapvault.maintenance.check import CheckReport
    from snapvault.maintenance.copy import CopyResult
    from snapvault.maintenance.diff import SnapshotDiff
    from snapvault.maintenance.find import FindMatch
    from snapvault.maintenance.prune import PruneResult
    from snapvault.maintenance.rekey import RekeyResult
    from snapvault.maintenance.repair import RepairIndexResult, RepairSnapshotsResult
    from snapvault.policy.model import Policy
    from snapvault.policy.records import BrokenPolicy
    from snapvault.policy.selection import ForgetGroup
    from snapvault.repository.config import KdfParams
    from snapvault.repository.keys import KeyInfo
    from snapvault.repository.manifest import Manifest

__all__ = ["Repository"]


class Repository(_FormatRepository):
    """An open snapvault repository.

    Use :meth:`init` to create one and :meth:`open` to open one; do not call the constructor.
    A handle is safe to share between threads.
    """

    # -- verification ----------------------------------------------------------------------

    def check(
        self,
        read_data: bool = False,
        *,
        read_data_subset: float | None = None,
        seed: int | None = None,
        callback: Any = None,
    ) -> CheckReport:
        """Verify the repository; see :class:`snapvault.CheckReport`.

        Parameters
        ----------
        read_data : bool
            Download every pack and verify every blob, not only the structure.
        read_data_subset : float, optional
            Do that for a random fraction (0, 1] of the packs instead.
        seed : int, optional
            Seeds the choice of that subset.
        callback : fsspec.callbacks.Callback, optional
            Counts the bytes of the packs read when packs are read (the size is set before
            the snapshots are walked), else the snapshots checked; ``value == size`` once the
            check completes.
        """
        from snapvault.maintenance.check import check_repository

        return check_repository(
            self, read_data=read_data, read_data_subset=read_data_subset, seed=seed, callback=callback
        )

    # -- replication -----------------------------------------------------------------------

    def copy_snapshots(
        self,
        dst: _FormatRepository,
        snapshots: Iterable[str | Manifest] | None = None,
        *,
        workers: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        callback: Any = None,
    ) -> CopyResult:
        """Copy snapshots (default: all) from this repository into ``dst``.

        Only blobs ``dst`` lacks are uploaded, and a snapshot copied before is skipped; see
        :mod:`snapvault.maintenance.copy`.

        Parameters
        ----------
        dst : Repository
            The destination.
        snapshots : iterable of str or Manifest, optional
            Which to copy (IDs, prefixes, ``latest`` or manifests); default all.
        workers : int, optional
            Threads that encode what is uploaded; default the number of CPUs.
        should_stop : callable, optional
            Polled before each blob is read; returning True stops the copy.
        callback : fsspec.callbacks.Callback, optional
            Counts the file bytes the copied snapshots hold: ``set_size`` with their recorded
            total before the first is copied (snapshots already in ``dst`` are not counted),
            ``relative_update`` as each file's data is in ``dst`` (uploaded or found there);
            ``value == size`` once the copy completes.

        Raises
        ------
        JobCancelled
            If ``should_stop`` asked to stop; what was uploaded is indexed and reused next time.
        """
        from snapvault.maintenance.copy import copy_snapshots

        return copy_snapshots(self, dst, snapshots, workers=workers, should_stop=should_stop, callback=callback)

    # -- policies --------------------------------------------------------------------------

    def save_policy(self, policy: Policy, *, now: datetime | None = None) -> None:
        """Store ``policy`` (encrypted) under its name, replacing an earlier one.

        Raises
        ------
        UnknownStrategy
            If its retention strategy is not registered (:func:`snapvault.register_strategy`)
            or installed as an entry point, so the stored policy could not be read back.
        ConfigError
            If the policy has Python callables as hooks (only shell commands can be stored),
            or its retention strategy would read back as another class or value.
        """
        from snapvault.policy.records import save_policy

        save_policy(self, policy, now or datetime.now(UTC))

    def load_policy(self, name: str) -> Policy:
        """Load the stored policy called ``name``.

        Raises
        ------
        PolicyNotFound
            If there is none.
        UnknownStrategy
            If its retention strategy is not installed or registered here.
        IntegrityError
            If its record is damaged or does not validate.
        """
        from snapvault.policy.records import load_policy

        return load_policy(self, name)

    def policies(self) -> dict[str, Policy]:
        """Every stored policy this process can read, by name.

        A record that cannot be read hides no other; :meth:`broken_policies` names it.
        """
        from snapvault.policy.records import read_policies

        return read_policies(self).policies

    def broken_policies(self) -> list[BrokenPolicy]:
        """The stored policy records that cannot be read here, and why.

        A policy whose retention strategy is not installed here, or whose newest record is
        damaged, is listed by name; a record that cannot be decrypted or parsed at all, by key
        only. :meth:`remove_policy` removes a policy listed by name.
        """
        from snapvault.policy.records import read_policies

        return read_policies(self).broken

    def remove_policy(self, name: str, *, now: datetime | None = None) -> None:
        """Remove the stored policy ``name`` (its snapshots stay), also one that cannot be read.

        Raises
        ------
        PolicyNotFound
            If there is none.
        """
        from snapvault.policy.records import remove_policy

        remove_policy(self, name, now or datetime.now(UTC))

    # -- selecting, forgetting and re-tagging snapshots ------------------------------------

    def forget(
        self,
        snapshots: Iterable[str] | None = None,
        *,
        keep_last: int | None = None,
        keep_hourly: int | None = None,
        keep_daily: int | None = None,
        keep_weekly: int | None = None,
        keep_monthly: int | None = None,
        keep_yearly: int | None = None,
        keep_within: timedelta | str | None = None,
        keep_tags: Iterable[str] = (),
        timezone: str = "UTC",
        hosts: Iterable[str] = (),
        tags: Iterable[str] = (),
        paths: Iterable[str] = (),
        policy: str | None = None,
        group_by: Iterable[str] = ("host", "paths"),
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> list[ForgetGroup]:
        """Remove snapshots by ID, or by retention rules given here rather than in a policy.

        See :func:`snapvault.policy.selection.forget_snapshots`. The ``keep_*`` rules (GFS
        buckets in ``timezone``) apply per group (``group_by``: ``host``, ``paths``,
        ``tags``) to every snapshot the filters select (``hosts``, ``tags`` as
        comma-separated groups, ``paths``, ``policy``), policy-made or not; a snapshot any
        rule keeps stays. ``snapshots`` are IDs, unique prefixes or ``latest`` (the newest
        the filters select). Only manifests go; the data stays until :meth:`prune`.

        Returns
        -------
        list of ForgetGroup
            Per group, the decision (keep and remove, with reasons) and what was removed.

        Raises
        ------
        ConfigError
            If both or neither of IDs and rules are given, or a rule is invalid.
        SnapshotNotFound, AmbiguousSnapshot
            If an ID matches no snapshot or several (nothing is removed).
        AppendOnlyError
            If this handle is append-only (a dry run is allowed).
        """
        from snapvault.policy.selection import SnapshotFilter, adhoc_strategy, forget_snapshots

        rules = adhoc_strategy(
            keep_last=keep_last,
            keep_hourly=keep_hourly,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            keep_yearly=keep_yearly,
            keep_within=keep_within,
            keep_tags=keep_tags,
            timezone=timezone,
        )
        return forget_snapshots(
            self,
            snapshots,
            rules=rules,
            where=SnapshotFilter(hosts=hosts, tags=tags, paths=paths, policy=policy),
            group_by=group_by,
            now=now or datetime.now(UTC),
            dry_run=dry_run,
        )

    def tag(
        self,
        snapshot: str | Manifest,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        set: Iterable[str] | None = None,
    ) -> Manifest:
        """Change a snapshot's tags; see :func:`snapvault.policy.selection.retag`.

        A new manifest with the new tags (every other field as it was, plus
        ``retagged_from``: the snapshot's first ID) is saved, then the old one is deleted.
        Unchanged tags write nothing. Returns the new (or unchanged) manifest.

        Raises
        ------
        ConfigError
            If no change is asked for, or ``set`` is combined with ``add``/``remove``.
        SnapshotNotFound, AmbiguousSnapshot
            If ``snapshot`` names no snapshot or several.
        AppendOnlyError
            If this handle is append-only; nothing is written.
        """
        from snapvault.policy.selection import retag

        return retag(self, snapshot, add=add, remove=remove, set=set)

    # -- comparing and searching snapshots -------------------------------------------------

    def diff(self, before: str | Manifest, after: str | Manifest) -> SnapshotDiff:
        """What changed from snapshot ``before`` to snapshot ``after``; see :mod:`snapvault.maintenance.diff`.

        Each is a manifest, a full ID, a unique prefix (4+ hex digits) or ``latest``. Subtrees
        with the same tree ID on both sides are skipped unread.

        Returns
        -------
        SnapshotDiff
            Every changed path with its kind (``added``, ``removed``, ``modified``,
            ``metadata``, ``type``), sorted by path, and the totals.

        Raises
        ------
        SnapshotNotFound, AmbiguousSnapshot
            If a reference names no snapshot or several.
        IntegrityError
            If a tree that differs cannot be read.
        """
        from snapvault.errors import ConfigError
        from snapvault.maintenance.diff import diff_snapshots
        from snapvault.repository.manifest import Manifest

        sides = []
        for ref in (before, after):
            if not isinstance(ref, (str, Manifest)):
                raise ConfigError(f"a snapshot is a Manifest, an ID, a prefix or 'latest', not {ref!r}")
            sides.append(ref if isinstance(ref, Manifest) else self.resolve(ref))
        return diff_snapshots(self, sides[0], sides[1])

    def find(
        self,
        pattern: str,
        *,
        snapshots: Iterable[str | Manifest] | None = None,
        hosts: Iterable[str] = (),
        tags: Iterable[str] = (),
        paths: Iterable[str] = (),
        policy: str | None = None,
        latest: int | None = None,
        ignore_case: bool = False,
        newer: datetime | None = None,
        older: datetime | None = None,
    ) -> Iterator[FindMatch]:
        """The entries whose name (or path, for a pattern with ``/``) matches ``pattern``, as
        restic's ``find``; see :mod:`snapvault.maintenance.find` for the pattern rules.

        The snapshots searched are ``snapshots`` (manifests, IDs, unique prefixes, or
        ``latest``: the newest the filters select), or else every snapshot the filters
        select (``hosts``, ``tags`` as comma-separated groups, ``paths``, ``policy``; the
        rules of :class:`snapvault.SnapshotFilter`), of which ``latest`` keeps the N newest
        per host and paths. They are searched oldest first, each depth first in name order.

        Parameters
        ----------
        ignore_case : bool
            Match case-insensitively.
        newer, older : datetime, optional
            Only entries modified at or after ``newer`` and before ``older`` (timezone-aware).

        Returns
        -------
        iterator of FindMatch
            ``snapshot_id``, ``short_id``, ``path`` (absolute) and ``node`` of each match,
            read lazily; the snapshots are chosen, and the arguments checked, before this
            returns.

        Raises
        ------
        SnapshotNotFound, AmbiguousSnapshot
            If a reference names no snapshot or several.
        ConfigError
            If the pattern is empty, a filter or time invalid, or ``latest`` is combined with
            ``snapshots``.
        IntegrityError
            While iterating, if a tree cannot be read.
        """
        from snapvault.maintenance.find import find_in_snapshots

        chosen = self._choose(snapshots, hosts=hosts, tags=tags, paths=paths, policy=policy, latest=latest)
        return find_in_snapshots(self, chosen, pattern, ignore_case=ignore_case, newer=newer, older=older)

    def catalog(
        self,
        snapshots: Iterable[str | Manifest] | None = None,
        *,
        path: str = "",
        hosts: Iterable[str] = (),
        tags: Iterable[str] = (),
        paths: Iterable[str] = (),
        policy: str | None = None,
        latest: int | None = None,
    ) -> Catalog:
        """Every entry of some snapshots as rows, for notebooks; see :mod:`snapvault.maintenance.catalog`.

        The snapshots are chosen as by :meth:`find`: ``snapshots`` (manifests, IDs, unique
        prefixes, or ``latest``), or else every snapshot the filters select, of which
        ``latest`` keeps the N newest per host and paths.

        Parameters
        ----------
        path : str, optional
            List only the entries at or below this path of each snapshot (``/home/me/docs``);
            a snapshot without it raises :class:`~snapvault.errors.SnapshotNotFound` when the
            catalog reaches it.

        Returns
        -------
        Catalog
            An iterable of :class:`~snapvault.maintenance.catalog.CatalogRow` (``snapshot``,
            ``snapshot_time``, ``path``, ``type``, ``size``, ``mtime``), oldest snapshot
            first, read lazily on each iteration; ``to_pandas()`` and ``to_arrow()`` build a
            table when pandas or pyarrow is installed.

        Raises
        ------
        SnapshotNotFound, AmbiguousSnapshot
            If a reference names no snapshot or several.
        ConfigError
            If a filter is invalid, or ``latest`` is combined with ``snapshots``.

        Examples
        --------
        >>> df = repo.catalog(policy="docs").to_pandas()  # doctest: +SKIP
        >>> df[df.path.str.endswith(".csv")].groupby("snapshot_time").size.sum()  # doctest: +SKIP
        """
        from snapvault.maintenance.catalog import Catalog

        chosen = self._choose(snapshots, hosts=hosts, tags=tags, paths=paths, policy=policy, latest=latest)
        return Catalog(self, chosen, path)

    def _choose(
        self,
        snapshots: Iterable[str | Manifest] | None,
        *,
        hosts: Iterable[str],
        tags: Iterable[str],
        paths: Iterable[str],
        policy: str | None,
        latest: int | None,
    ) -> list[Manifest]:
        """The snapshots ``find`` and ``catalog`` read, oldest first."""
        from snapvault.errors import ConfigError
        from snapvault.policy.selection import SnapshotFilter, find_snapshot, latest_per_group, select
        from snapvault.repository.manifest import Manifest

        where = SnapshotFilter(hosts=hosts, tags=tags, paths=paths, policy=policy)
        if isinstance(snapshots, str):
            raise ConfigError(f"snapshots must be a list, not the string {snapshots!r}")
        named = None if snapshots is None else list(snapshots)
        if named:
            if latest is not None:
                raise ConfigError("latest picks among the snapshots the filters select; do not name snapshots too")
            found: dict[str, Manifest] = {}
            for ref in named:
                if not isinstance(ref, (str, Manifest)):
                    raise ConfigError(f"a snapshot is a Manifest, an ID, a prefix or 'latest', not {ref!r}")
                m = ref if isinstance(ref, Manifest) else find_snapshot(self, ref, where)
                found[m.id] = m
            chosen = sorted(found.values(), key=lambda m: (m.time, m.id))
        else:
            chosen = select(self.snapshots(), where)
            if latest is not None:
                chosen = latest_per_group(chosen, latest)
        return chosen

    # -- lifecycle -------------------------------------------------------------------------

    def prune(
        self,
        *,
        now: datetime | None = None,
        dry_run: bool = False,
        max_repack: float = 0.1,
        max_unused: float = 0.05,
        writer_timeout: timedelta = timedelta(hours=1),
        callback: Any = None,
    ) -> PruneResult:
        """Free the space no snapshot uses, safely while other machines back up; see
        :mod:`snapvault.maintenance.prune` and docs/design.md ("Prune").

        Parameters
        ----------
        now : datetime, optional
            The time writer records are compared with (default: the clock).
        dry_run : bool
            Report what would be marked, repacked and deleted; change nothing.
        max_repack : float
            Copy at most this fraction of the repository's size into new packs per run.
        max_unused : float
            Repack until the unused space is at most this fraction of the live data.
        writer_timeout : timedelta
            A writer whose record is older is taken for crashed (at least 30 minutes).
        callback : fsspec.callbacks.Callback, optional
            Counts the bytes of the packs dealt with: deleted (or rescued) and read to be
            repacked. The size is set once the snapshots are walked, and grows when this
            run's own mark is carried out; ``value == size`` once the prune completes (0 for
            a dry run).

        Raises
        ------
        AppendOnlyError
            If this handle is append-only (a dry run is allowed).
        PruneError
            If a snapshot cannot be read (nothing is deleted).
        """
        from snapvault.maintenance.prune import prune

        return prune(
            self,
            now=now or datetime.now(UTC),
            dry_run=dry_run,
            max_repack=max_repack,
            max_unused=max_unused,
            writer_timeout=writer_timeout,
            callback=callback,
        )

    # -- repair ----------------------------------------------------------------------------

    def repair_index(self) -> RepairIndexResult:
        """Rebuild the index from the pack headers; see :func:`snapvault.maintenance.repair.repair_index`."""
        from snapvault.maintenance.repair import repair_index

        return repair_index(self)

    def repair_snapshots(
        self, *, forget_broken: bool = False, dry_run: bool = False, now: datetime | None = None
    ) -> RepairSnapshotsResult:
        """Write repaired copies of snapshots that reference missing blobs; see
        :func:`snapvault.maintenance.repair.repair_snapshots`."""
        from snapvault.maintenance.repair import repair_snapshots

        return repair_snapshots(self, forget_broken=forget_broken, dry_run=dry_run, now=now or datetime.now(UTC))

    # -- keys ------------------------------------------------------------------------------

    def keys(self) -> list[KeyInfo]:
        """Every key file of the repository (its ID, label, time and KDF), the one in use marked."""
        from snapvault.repository.keys import list_keys

        return list_keys(self)

    def add_key(
        self,
        password: str | bytes,
        *,
        label: str = "",
        kdf: KdfParams | None = None,
        now: datetime | None = None,
    ) -> KeyInfo:
        """Add a key file: ``password`` then opens the repository too; see :mod:`snapvault.repository.keys`."""
        from snapvault.repository.keys import add_key

        return add_key(self, password, label=label, kdf=kdf, now=now or datetime.now(UTC))

    def remove_key(self, key_id: str, *, force: bool = False) -> None:
        """Remove a key file (never the last; the one in use only with ``force``)."""
        from snapvault.repository.keys import remove_key

        remove_key(self, key_id, force=force)

    def rotate_key(
        self,
        password: str | bytes,
        *,
        rewrite: bool = False,
        force: bool = False,
        now: datetime | None = None,
        writer_timeout: timedelta = timedelta(hours=1),
    ) -> RekeyResult | KeyInfo:
        """Give the repository a new master encryption key (see :func:`snapvault.repository.keys.rotate_key`).

        With ``rewrite``, then re-seal everything the retired keys sealed and drop them (see
        :mod:`snapvault.maintenance.rekey`), returning a ``RekeyResult``; when the repository
        already carries retired keys (an earlier rotation not yet rewritten), the rewrite
        resumes without making yet another key. ``password`` is the one this handle opened
        with: its key file is re-wrapped. Other key files are removed, which takes ``force``.
        """
        from snapvault.maintenance.rekey import rewrite as do_rewrite
        from snapvault.repository.keys import rotate_key, settle_key_files

        when = now or datetime.now(UTC)
        if rewrite:
            # An interrupted rotation or rewrite is finished, never started over.
            settled = settle_key_files(self, password)
            if self.master_keys.retired_keys or settled:
                return do_rewrite(self, password, now=when, writer_timeout=writer_timeout)
        info = rotate_key(self, password, force=force, now=when)
        if not rewrite:
            return info
        return do_rewrite(self, password, now=when, writer_timeout=writer_timeout)

    def change_password(
        self,
        new_password: str | bytes,
        *,
        label: str | None = None,
        kdf: KdfParams | None = None,
        now: datetime | None = None,
    ) -> KeyInfo:
        """Replace the key file in use by one for ``new_password`` (added first, then the old removed)."""
        from snapvault.repository.keys import change_password

        return change_password(self, new_password, label=label, kdf=kdf, now=now or datetime.now(UTC))
