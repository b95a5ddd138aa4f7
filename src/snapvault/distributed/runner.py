"""The driver's side of a run's tasks, shared by backups and restores: submitting, waiting
(with cancellation), stopping every task, and one progress callback for all workers; and the
workers' side of cancellation and progress."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from snapvault.archiver.walker import Cancelled

__all__ = ["BatchedProgress", "PolledFlag", "ProgressRelay", "StopPoll", "TaskRunner"]

# How often the driver looks at its tasks and at should_stop while waiting.
_WAIT_S = 0.1
# How long a cancelled or failed run waits for its tasks still running on workers to stop
# (each asks whether to stop twice a second, then settles what it did).
_DRAIN_S = 60.0
# How often a task asks whether the run was cancelled, and sends its progress: each is a
# message to the scheduler, so not per chunk.
_POLL_S = 0.5
_PROGRESS_S = 0.25


class TaskRunner:
    """One run's tasks, seen from the driver.

    Parameters
    ----------
    client : distributed.Client
    kind : str
        Names the run's task keys (``snapvault-<kind>-<token>-<n>``), events and topics.
    callback : fsspec.callbacks.Callback, optional
        Gets the workers' progress (bytes), and the driver's own.
    progress : callable, optional
        Called as ``progress(bytes, path)`` with the same (``path`` is "" for a worker's).
    should_stop : callable, optional
        Polled while waiting; True raises Cancelled.
    retries : int
        Times Dask runs a task again after it raised.
    """

    def __init__(
        self,
        client: Any,
        kind: str,
        *,
        callback: Any = None,
        progress: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        retries: int = 1,
    ) -> None:
        self.client = client
        self.callback = callback
        self.progress = progress
        self.should_stop = should_stop
        self.retries = retries
        token = secrets.token_hex(8)
        self.prefix = f"snapvault-{kind}-{token}-"
        #: The name of the run's cancel event (tasks poll it with :class:`StopPoll`).
        self.stop_name = f"snapvault-stop-{token}"
        #: The topic of the workers' progress events (:class:`ProgressRelay`).
        self.topic = f"snapvault-progress-{token}"
        self.futures: list[Any] = []
        self._lock = threading.Lock()

    # -- progress ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Pass the workers' progress events to the callback for the duration."""
        self.client.subscribe_topic(self.topic, self._on_event)
        try:
            yield
        finally:
            self.client.unsubscribe_topic(self.topic)

    def _on_event(self, event: Any) -> None:
        """A worker's progress event (``(time, bytes)``), on the client's event thread."""
        n = event[1] if isinstance(event, tuple) else event
        if isinstance(n, int):
            self.advance(n)

    def advance(self, n: int, path: str = "") -> None:
        """Count ``n`` bytes done (usable as a ``progress(n, path)`` hook on the driver)."""
        if self.callback is not None:
            with self._lock:
                self.callback.relative_update(n)
        if self.progress is not None:
            self.progress(n, path)

    def credit(self, n: int) -> None:
        """Count ``n`` bytes done on the callback alone (bytes no one reads: unchanged files)."""
        if self.callback is not None:
            with self._lock:
                self.callback.relative_update(n)

    def sized(self, total: int) -> None:
        """Tell the callback the bytes the run covers."""
        if self.callback is not None:
            with self._lock:
                self.callback.set_size(total)

    def finish(self, total: int) -> None:
        """Make the callback's value the exact total (retried tasks reported some bytes twice)."""
        if self.callback is not None:
            with self._lock:
                self.callback.set_size(total)
                self.callback.absolute_update(total)

    # -- tasks -------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Submit one task ``fn(*args)``; its arguments must hold no secret."""
        self.futures.append(
            self.client.submit(fn, *args, key=f"{self.prefix}{len(self.futures)}", pure=False, retries=self.retries)
        )

    def results(self) -> Iterator[Any]:
        """Each task's result as it finishes; raise Cancelled when ``should_stop`` says so, and
        the task's error when one failed for good."""
        pending = list(self.futures)
        while pending:
            if self.should_stop is not None and self.should_stop():
                raise Cancelled
            still = []
            for f in pending:
                if not f.done():
                    still.append(f)
                    continue
                out = f.result()
                f.release()
                yield out
            if len(still) == len(pending):
                time.sleep(_WAIT_S)
            pending = still

    def stop(self) -> None:
        """Stop every task of this run and wait (bounded) until none still runs on a worker.

        Cancelling a future does not interrupt a task already running: the run's event asks
        it to stop at its next chunk or file, and it then settles what it did (a backup's
        task indexes what it stored, so the next backup reuses it). Waiting for that means
        that when the run raises, nothing of it is still reading or writing.
        """
        from distributed import Event

        prefix = self.prefix

        def held(dask_worker: Any) -> int:
            # Running (cancelled ones still run until they return), or about to: a task
            # queued on a worker starts the moment the one before it ends.
            state = dask_worker.state
            ready = sum(1 for ts in state.tasks.values() if ts.state in _QUEUED and str(ts.key).startswith(prefix))
            running = state.executing | state.long_running
            return ready + sum(1 for ts in running if str(ts.key).startswith(prefix))

        def scheduled(dask_scheduler: Any) -> int:
            return sum(1 for k, ts in dask_scheduler.tasks.items() if str(k).startswith(prefix) and ts.state in _QUEUED)

        try:
            event: Any = Event(self.stop_name, client=self.client)  # type: ignore[no-untyped-call]
            event.set()
            self.client.cancel(self.futures)
            deadline = time.monotonic() + _DRAIN_S
            # Cancelling reaches the scheduler and the workers in their own time: done when
            # neither holds a task of the run, seen twice in a row.
            quiet = 0
            while quiet < 2 and time.monotonic() < deadline:
                busy = self.client.run_on_scheduler(scheduled) or any(self.client.run(held).values())
                quiet = 0 if busy else quiet + 1
                time.sleep(_WAIT_S)
        except Exception:  # noqa: BLE001 - the original failure is the one to report
            pass


# Task states, on the scheduler or a worker, of a task that is to run or runs.
_QUEUED = frozenset({"waiting", "queued", "no-worker", "processing", "ready", "constrained", "executing"})


class PolledFlag:
    """``should_stop`` in a worker: ``is_set()`` of the run's cancel event, asked at most
    every ``every`` seconds (each asking may be a message), sticky once true."""

    def __init__(self, event: Any, every: float) -> None:
        self._event = event
        self._every = every
        self._next = 0.0
        self._stopped = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._stopped and now >= self._next:
            self._next = now + self._every
            with contextlib.suppress(Exception):  # a scheduler unreachable for a moment: go on
                self._stopped = bool(self._event.is_set())
        return self._stopped


class StopPoll(PolledFlag):
    """``should_stop`` for a Dask task: the run's cancel event, asked at most every ``_POLL_S``."""

    def __init__(self, name: str) -> None:
        from distributed import Event

        super().__init__(Event(name), _POLL_S)  # type: ignore[no-untyped-call]


class BatchedProgress:
    """``progress`` in a worker: bytes done, passed to the driver in batches (``_send``) at
    most every ``every`` seconds, and at ``flush``."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._pending = 0
        self._sent_at = time.monotonic()
        #: Every byte reported, sent or not.
        self.total = 0

    def __call__(self, n: int, path: str) -> None:
        self._pending += n
        self.total += n
        if time.monotonic() - self._sent_at >= self._every:
            self.flush()

    def flush(self) -> None:
        """Send what was reported since the last batch."""
        if self._pending:
            self._send(self._pending)
            self._pending = 0
        self._sent_at = time.monotonic()

    def _send(self, n: int) -> None:
        raise NotImplementedError


class ProgressRelay(BatchedProgress):
    """``progress`` for a Dask task: bytes done, sent to the driver as worker events, batched."""

    def __init__(self, topic: str) -> None:
        from distributed import get_worker

        super().__init__(_PROGRESS_S)
        self._worker: Any = get_worker()
        self._topic = topic

    def _send(self, n: int) -> None:
        self._worker.log_event(self._topic, n)
