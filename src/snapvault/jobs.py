"""Background jobs: a backup or restore running on its own thread, watchable and cancellable.

The library prints nothing; progress goes to an optional fsspec ``Callback`` (use
``fsspec.callbacks.TqdmCallback`` in a notebook) and is readable at any time from
``job.progress``.
"""

from __future__ import annotations

import enum
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from snapvault.errors import JobCancelled

__all__ = ["BackupJob", "Job", "JobStatus", "Progress", "RestoreJob"]

T = TypeVar("T")


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class Progress:
    """A snapshot of a job's progress. Totals are None until known."""

    files_done: int = 0
    bytes_done: int = 0
    files_total: int | None = None
    bytes_total: int | None = None
    current_path: str = ""


@dataclass
class _ProgressState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: Progress = field(default_factory=Progress)


class Job(Generic[T]):
    """A unit of work on a background thread.

    Attributes
    ----------
    id : str
        Random hex ID.
    status : JobStatus
    started, ended : datetime or None
    error : BaseException or None
        Why it failed.
    """

    kind = "job"

    def __init__(
        self,
        work: Callable[[Job[T]], T],
        *,
        callback: Any = None,
        clock: Callable[[], datetime] | None = None,
        name: str = "",
    ) -> None:
        self.id = uuid.uuid4().hex
        self.name = name
        self.status = JobStatus.PENDING
        self.started: datetime | None = None
        self.ended: datetime | None = None
        self.error: BaseException | None = None
        self._result: T | None = None
        self._work = work
        self._callback = callback
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._progress = _ProgressState()
        self._thread = threading.Thread(target=self._run, name=f"snapvault-{self.kind}-{self.id[:8]}", daemon=True)

    def start(self) -> Job[T]:
        """Start the job's thread (``submit`` does this for you)."""
        self._thread.start()
        return self

    def _run(self) -> None:
        self.started = self._clock()
        self.status = JobStatus.RUNNING
        try:
            self._result = self._work(self)
            # The work finished (a cancel that came after its commit point changes nothing).
            self.status = JobStatus.COMPLETED
        except JobCancelled:
            self.status = JobStatus.CANCELLED
        except BaseException as e:  # noqa: BLE001 - reported through .error and .result()
            self.error = e
            self.status = JobStatus.CANCELLED if self._cancel.is_set() else JobStatus.FAILED
        finally:
            self.ended = self._clock()
            self._done.set()
            if self._callback is not None and hasattr(self._callback, "close"):
                self._callback.close()

    # -- control -------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the job to stop; it stops at the next file or chunk boundary."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was asked for."""
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job ends or ``timeout`` seconds pass; return the status."""
        self._done.wait(timeout)
        return self.status

    def result(self, timeout: float | None = None) -> T:
        """Wait, then return the result or raise the job's error.

        Raises
        ------
        JobCancelled
            If the job was cancelled.
        TimeoutError
            If it is still running after ``timeout`` seconds.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.kind} job {self.id[:8]} is still running")
        if self.status is JobStatus.CANCELLED:
            raise JobCancelled(f"{self.kind} job {self.id[:8]} was cancelled")
        if self.error is not None:
            raise self.error
        assert self._result is not None
        return self._result

    @property
    def done(self) -> bool:
        """Whether the job has ended."""
        return self._done.is_set()

    # -- progress ------------------------------------------------------------------------

    @property
    def progress(self) -> Progress:
        """The latest progress."""
        with self._progress.lock:
            return self._progress.value

    def set_totals(self, files: int, nbytes: int) -> None:
        """Record the totals once known."""
        with self._progress.lock:
            self._progress.value = replace(self._progress.value, files_total=files, bytes_total=nbytes)
        if self._callback is not None:
            self._callback.set_size(nbytes)

    def advance(self, nbytes: int, path: str, *, files: int = 0) -> None:
        """Count ``nbytes`` (and ``files``) done, now at ``path``."""
        with self._progress.lock:
            p = self._progress.value
            self._progress.value = replace(
                p, bytes_done=p.bytes_done + nbytes, files_done=p.files_done + files, current_path=path
            )
        if self._callback is not None and nbytes:
            self._callback.relative_update(nbytes)


class BackupJob(Job[Any]):
    """A backup running in the background; ``result()`` is the new :class:`Manifest`."""

    kind = "backup"


class RestoreJob(Job[Any]):
    """A restore running in the background; ``result()`` is the :class:`RestoreResult`.

    Its progress counts the files to write (a hardlinked file once, as it is written once) and
    their bytes; a damaged file counts as done when it is given up on (it is then listed in the
    result's ``errors``), so a completed job's done counts equal its totals.

    Attributes
    ----------
    restore_type : str
        ``full``, ``selective`` or ``point-in-time``.
    """

    kind = "restore"
    restore_type = "full"
