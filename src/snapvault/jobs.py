"""Background jobs: a backup or restore running on its own thread, watchable and cancellable.

The library prints nothing; progress goes to an optional fsspec ``Callback`` (use
``fsspec.callbacks.TqdmCallback`` in a notebook), is readable at any time from
``job.progress``, and comes to a service as an async iterator of :class:`JobEvent`
(``async for event in job.events()``).

The ``a*`` methods of the engine and the restorer run their work through
:func:`run_cancellable`: cancelling the asyncio task that awaits them stops the work itself,
not only the wait.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from snapvault.errors import JobCancelled

if TYPE_CHECKING:
    import asyncio

__all__ = ["BackupJob", "Job", "JobEvent", "JobStatus", "Progress", "RestoreJob", "run_cancellable"]

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


@dataclass(frozen=True)
class JobEvent:
    """One event of ``async for event in job.events()`` (a :class:`BackupJob` or :class:`RestoreJob`).

    Attributes
    ----------
    kind : str
        ``started`` (once), ``progress`` (the progress changed), then exactly one of
        ``completed``, ``failed`` or ``cancelled``, the last event.
    progress : Progress
        The job's progress when the event was taken.
    status : JobStatus
        The job's status when the event was taken.
    error : BaseException or None
        Why it failed (``failed`` and ``cancelled`` events only, when there is an error).
    """

    kind: Literal["started", "progress", "completed", "failed", "cancelled"]
    progress: Progress
    status: JobStatus
    error: BaseException | None = None


_END_KINDS: dict[JobStatus, Literal["completed", "failed", "cancelled"]] = {
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


class _Listener:
    """One ``events()`` iterator: woken from any thread, at most one wake-up in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        import asyncio  # only a service's event loop needs it: the CLI starts without it

        self.loop = loop
        self.wake = asyncio.Event()
        self.pending = False  # guarded by the job's progress lock

    def poke(self) -> None:
        # A closed loop raises RuntimeError: nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.wake.set)


@dataclass
class _ProgressState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: Progress = field(default_factory=Progress)
    listeners: list[_Listener] = field(default_factory=list)


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
        self._status = JobStatus.PENDING
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
        self._status = JobStatus.RUNNING
        self._notify()
        try:
            self._result = self._work(self)
            # The work finished (a cancel that came after its commit point changes nothing).
            self._status = JobStatus.COMPLETED
        except JobCancelled:
            self._status = JobStatus.CANCELLED
        except BaseException as e:  # noqa: BLE001 - reported through .error and .result()
            self.error = e
            self._status = JobStatus.CANCELLED if self._cancel.is_set() else JobStatus.FAILED
        finally:
            self.ended = self._clock()
            self._done.set()
            self._notify()
            if self._callback is not None and hasattr(self._callback, "close"):
                self._callback.close()

    @property
    def status(self) -> JobStatus:
        """Where the job is; a finished status only once the job has ended (``done``), so
        whoever sees one can take :meth:`result` at once."""
        status = self._status
        # The work sets its outcome a moment before the job is marked done.
        return status if not status.finished or self._done.is_set() else JobStatus.RUNNING

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
        self._notify()
        if self._callback is not None:
            self._callback.set_size(nbytes)

    def advance(self, nbytes: int, path: str, *, files: int = 0) -> None:
        """Count ``nbytes`` (and ``files``) done, now at ``path``."""
        with self._progress.lock:
            p = self._progress.value
            self._progress.value = replace(
                p, bytes_done=p.bytes_done + nbytes, files_done=p.files_done + files, current_path=path
            )
        self._notify()
        if self._callback is not None and nbytes:
            self._callback.relative_update(nbytes)

    # -- events --------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake each ``events()`` iterator that is not already due to wake (so a job that
        advances a million times does not queue a million callbacks on the loop)."""
        with self._progress.lock:
            due = [x for x in self._progress.listeners if not x.pending]
            for x in due:
                x.pending = True
        for x in due:
            x.poke()

    async def events(self) -> AsyncIterator[JobEvent]:
        """The job's events, as an async iterator that ends when the job ends.

        Yields ``started`` once, then a ``progress`` event each time the progress has changed
        since the last event, then one of ``completed``, ``failed`` or ``cancelled``. Progress
        is coalesced, not queued: an iterator that falls behind gets the latest progress, not
        every step (memory stays bounded whatever the job's size). An iterator started after
        the job ended yields ``started``, the final progress and the end. Any number of
        iterators may follow one job; each must run on an event loop (the job thread wakes it
        with ``loop.call_soon_threadsafe``).

        Yields
        ------
        JobEvent
        """
        import asyncio

        listener = _Listener(asyncio.get_running_loop())
        with self._progress.lock:
            self._progress.listeners.append(listener)
        try:
            started = False
            last = Progress()
            while True:
                with self._progress.lock:
                    # Cleared before the state is read: a change after the read wakes us again.
                    listener.pending = False
                    listener.wake.clear()
                    now = self._progress.value
                done = self._done.is_set()
                status = self.status
                if not started and status is not JobStatus.PENDING:
                    started = True
                    yield JobEvent("started", now, status)
                if started and now != last:
                    last = now
                    # The zero progress a job starts with is no news.
                    if now != Progress():
                        yield JobEvent("progress", now, status)
                if done:
                    yield JobEvent(_END_KINDS[status], now, status, self.error)
                    return
                await listener.wake.wait()
        finally:
            with self._progress.lock:
                self._progress.listeners.remove(listener)


async def run_cancellable(work: Callable[[Callable[[], bool]], T]) -> T:
    """Run ``work(should_stop)`` in a worker thread; cancelling the awaiting task stops it.

    Unlike ``asyncio.to_thread``, which stops waiting but leaves the thread running,
    cancellation here makes ``should_stop()`` return True, waits until ``work`` has returned
    or raised (another cancellation meanwhile does not cut that wait short), then re-raises
    :class:`asyncio.CancelledError`. The work's own outcome is then dropped: normally
    :class:`~snapvault.errors.JobCancelled`; a result if the cancellation came after the
    work's commit point, where it no longer polls ``should_stop``.

    Parameters
    ----------
    work : callable
        Called once in a thread of the loop's default executor, with the ``should_stop``
        callable to poll; runs in a copy of the caller's context, as with ``to_thread``.

    Returns
    -------
    The work's result.
    """
    import asyncio

    stop = threading.Event()
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, work, stop.is_set)
    fut = loop.run_in_executor(None, call)
    try:
        # Shielded: a cancellation must reach us, not the executor future (whose thread runs on).
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        stop.set()
        while not fut.done():
            try:
                await asyncio.wait((fut,))
            except asyncio.CancelledError:
                continue  # cancelled again: the thread still has to stop first
        if not fut.cancelled():
            fut.exception()  # retrieved, so asyncio does not log it as never retrieved
        raise


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
