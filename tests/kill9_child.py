"""The process tests/test_kill9.py kills: a fork server for backup, copy, forget and prune.

It imports the library once, then reads one JSON request a line from stdin. For each it forks
a child that opens the repository afresh and runs the operation on the real local store; that
child is the process that dies by SIGKILL, in one of two ways:

- ``{"timer": seconds}``: this server sends SIGKILL once that long has passed since the fork,
  wherever the child then is (a syscall, an fsync, between two bytecodes). The child is not
  reaped before the kill, so its pid cannot have been reused by then.
- ``{"prefix": "snapshots/", "nth": 1, "when": "before" | "after" | "during", "delay": s}``:
  the child's store kills the child itself around its ``nth`` write (a create or a delete)
  whose key starts with ``prefix``: right before the call, right after it returned, or from a
  timer thread started ``delay`` seconds before the call (so the kill lands inside the write,
  or just after it).

An operation that was not killed answers with the folder of each write it made, in order
(``writes``) and whether each was a create or a delete (``kinds``): the test plans later kills
from them.

Forking from a server that has already imported the library makes a fresh process cost a few
milliseconds instead of the interpreter's start-up, which is what lets a CI run afford
hundreds of kills. The server holds no repository state: every child opens its own.

It answers each request with one JSON line: whether the child was killed, its exit code, the
child's result (``None`` when killed) and how long the child lived.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import snapvault as sv
from snapvault.maintenance import copy as _copy  # noqa: F401 - imported before forking, not per child
from snapvault.maintenance import prune as _prune  # noqa: F401
from snapvault.policy import run as _run  # noqa: F401
from snapvault.storage import Capabilities, LocalStore, StoreEntry

_T = TypeVar("_T")


class KillStore:
    """A local store whose process dies by SIGKILL around one chosen write."""

    def __init__(self, inner: LocalStore, plan: dict[str, Any] | None) -> None:
        self.inner = inner
        self.plan = plan or {}
        self.writes: list[str] = []
        self.kinds: list[str] = []
        self._seen = 0
        self._lock = threading.Lock()

    # Reads go straight through; capabilities too, so packs are still built in the local
    # store's spool folder and linked into place, as they are without this wrapper.
    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        return self.inner.list(prefix)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        return self._write(key, "put", lambda: self.inner.put_if_absent(key, data))

    def put_file_if_absent(self, key: str, path: str) -> bool:
        return self._write(key, "put", lambda: self.inner.put_file_if_absent(key, path))

    def delete(self, key: str) -> None:
        self._write(key, "delete", lambda: self.inner.delete(key))

    def _write(self, key: str, kind: str, call: Callable[[], _T]) -> _T:
        prefix = self.plan.get("prefix")
        with self._lock:
            self.writes.append(key.split("/", 1)[0])
            self.kinds.append(kind)
            target = prefix is not None and key.startswith(prefix)
            if target:
                self._seen += 1
                target = self._seen == self.plan["nth"]
        when = self.plan.get("when")
        if target and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        if target and when == "during":
            threading.Timer(self.plan["delay"], os.kill, (os.getpid(), signal.SIGKILL)).start()
        result = call()
        if target and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result


def _open(path: str, password: str, plan: dict[str, Any] | None) -> tuple[sv.Repository, KillStore]:
    store = KillStore(LocalStore(path), plan)
    return sv.Repository.open(path, password, store=store), store


def _operate(req: dict[str, Any]) -> dict[str, Any]:
    op, plan, pw = req["op"], req.get("kill"), req["password"]
    if plan is not None and "timer" in plan:
        plan = None
    now = datetime.fromisoformat(req["now"])
    if op == "backup":
        repo, store = _open(req["repo"], pw, plan)
        m = sv.Engine(repo, workers=2).backup([req["source"]], now=now)
        out: dict[str, Any] = {"snapshot": m.id}
    elif op == "copy":
        src = sv.Repository.open(req["source_repo"], pw)
        repo, store = _open(req["repo"], pw, plan)
        res = src.copy_snapshots(repo, workers=2)
        out = {"copied": res.copied}
    elif op == "forget":
        repo, store = _open(req["repo"], pw, plan)
        out = {"removed": [sid for r in sv.forget(repo, now=now) for sid in r.removed]}
    elif op == "prune":
        repo, store = _open(req["repo"], pw, plan)
        pruned = repo.prune(now=now, max_repack=req["max_repack"], max_unused=req.get("max_unused", 0.05))
        out = {
            "marks_written": pruned.marks_written,
            "marks_carried_out": pruned.marks_carried_out,
            "deleted_packs": pruned.deleted.packs,
            "deferred_packs": pruned.deferred.packs,
            "repacked_blobs": pruned.repacked_blobs,
            "rescued": pruned.rescued,
            "live_writers": pruned.live_writers,
        }
    else:
        raise ValueError(f"unknown operation {op!r}")
    out["writes"] = store.writes
    out["kinds"] = store.kinds
    return out


def _child(req: dict[str, Any], wfd: int) -> None:
    code = 0
    try:
        out = _operate(req)
        if (req.get("kill") or {}).get("when") == "during":
            # The kill timer is still pending: the child dies of it, just after its commit.
            time.sleep(5)
    except BaseException:  # noqa: BLE001 - everything is reported to the test
        out, code = {"error": traceback.format_exc()}, 1
    os.write(wfd, json.dumps(out).encode())
    os._exit(code)


def _serve(req: dict[str, Any]) -> dict[str, Any]:
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(rfd)
        _child(req, wfd)
    os.close(wfd)
    timer = (req.get("kill") or {}).get("timer")
    if timer is not None:
        pidfd = os.pidfd_open(pid)
        try:
            # The pidfd turns readable when the child exits; until it is reaped its pid stays
            # its own, so the kill below reaches this child and nothing else.
            if not select.select([pidfd], [], [], timer)[0]:
                os.kill(pid, signal.SIGKILL)
        finally:
            os.close(pidfd)
    chunks = []
    while chunk := os.read(rfd, 1 << 16):
        chunks.append(chunk)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    lived = time.monotonic() - started
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    result = json.loads(b"".join(chunks)) if chunks and not killed else None
    return {
        "killed": killed,
        "exit": os.waitstatus_to_exitcode(status),
        "result": result,
        "lived": lived,
    }


def main() -> None:
    for line in sys.stdin:
        print(json.dumps(_serve(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
