"""The public repository handle, ``snapvault.Repository``.

It is the format-level :class:`snapvault.repository.repo.Repository` (open, read, write the
format) plus the conveniences that belong to the layers above it: :meth:`Repository.check`
(maintenance), :meth:`Repository.copy_snapshots` (maintenance) and the policy methods
(policy). Each is a thin call downward, so the repository layer itself never imports those
layers. :meth:`Repository.init` and :meth:`Repository.open` return this class when called on
it, and everything that opens a repository for users (the CLI) opens this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from snapvault.repository.repo import Repository as _FormatRepository

if TYPE_CHECKING:
    from snapvault.maintenance.check import CheckReport
    from snapvault.maintenance.copy import CopyResult
    from snapvault.policy.model import Policy
    from snapvault.policy.records import BrokenPolicy
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
    ) -> CheckReport:
        """Verify the repository; see :func:`snapvault.maintenance.check.check_repository`.

        Parameters
        ----------
        read_data : bool
            Download every pack and verify every blob, not only the structure.
        read_data_subset : float, optional
            Do that for a random fraction (0, 1] of the packs instead.
        seed : int, optional
            Seeds the choice of that subset.
        """
        from snapvault.maintenance.check import check_repository

        return check_repository(self, read_data=read_data, read_data_subset=read_data_subset, seed=seed)

    # -- replication -----------------------------------------------------------------------

    def copy_snapshots(
        self,
        dst: _FormatRepository,
        snapshots: Iterable[str | Manifest] | None = None,
        *,
        workers: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> CopyResult:
        """Copy snapshots (default: all) from this repository into ``dst``.

        Only blobs ``dst`` lacks are uploaded, and a snapshot copied before is skipped; see
        :mod:`snapvault.maintenance.copy`.

        Raises
        ------
        JobCancelled
            If ``should_stop`` asked to stop; what was uploaded is indexed and reused next time.
        """
        from snapvault.maintenance.copy import copy_snapshots

        return copy_snapshots(self, dst, snapshots, workers=workers, should_stop=should_stop)

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
