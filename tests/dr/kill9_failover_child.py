"""Child process of the kill -9 failover test: a failover that halts at one point until killed.

    python tests/dr/kill9_failover_child.py SPEC_JSON

``SPEC_JSON`` gives ``primary`` (the primary's folder, where the plan is stored), ``plan``,
``env`` (the variables the sites reference), ``to``, ``now`` (ISO 8601) and ``point``:

- ``drill``: the pre-failover drill's first read of a pack (before it happens);
- ``promote``: the promote hook (the drill passed, no failover record written);
- ``record:N``: right after the N-th failover record landed (the new primary's is the first).

Every site is opened through a store that counts these events; at the point the child prints
``at POINT`` and sleeps, and the parent sends SIGKILL. Running to the end prints ``done``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from datetime import datetime
from typing import Any

import snapvault as sv
from snapvault.repository import layout
from snapvault.storage import open_store
from snapvault.storage.wrappers import _Wrapper

_lock = threading.Lock()
_counts: dict[str, int] = {}


def halt(point: str) -> None:
    """Say where, then wait to be killed."""
    print(f"at {point}", flush=True)
    time.sleep(600)
    raise SystemExit(f"not killed at {point}")


def _count(event: str) -> int:
    with _lock:
        _counts[event] = _counts.get(event, 0) + 1
        return _counts[event]


class Halting(_Wrapper):
    """Halts before the first pack read, or after the N-th failover record written."""

    def __init__(self, inner: Any, point: str) -> None:
        super().__init__(inner)
        self.point = point

    def _read(self, key: str) -> None:
        if self.point == "drill" and key.startswith(f"{layout.DATA}/") and _count("pack read") == 1:
            halt(self.point)

    def get(self, key: str) -> bytes:
        self._read(key)
        return super().get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._read(key)
        return super().get_range(key, offset, length)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        landed = super().put_if_absent(key, data)
        if key.startswith(f"{layout.DR_FAILOVERS}/"):
            n = _count("failover record")
            if self.point == f"record:{n}":
                halt(self.point)
        return landed


def _die_with_parent() -> None:
    # A test process that dies itself must not leave this child sleeping behind it.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main() -> int:
    _die_with_parent()
    spec = json.loads(sys.argv[1])
    env: dict[str, str] = spec["env"]
    point: str = spec["point"]
    primary = sv.Repository.open(spec["primary"], env["PW_LOCAL"])
    plan = sv.DRPlan.load(primary, spec["plan"])
    opened = {}
    for site in plan.sites:
        options = json.loads(env[site.options_env]) if site.options_env else None
        store = Halting(open_store(site.url, storage_options=options), point)
        opened[site.name] = sv.Repository.open(site.url, env[site.password_env or ""], store=store)
    hooks = {"promote": [lambda **_: halt(point)]} if point == "promote" else {}
    bound = plan.bind(env=env, repositories=opened, hooks=hooks)
    bound.failover(to=spec["to"], reason="kill -9 test", now=datetime.fromisoformat(spec["now"]))
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
