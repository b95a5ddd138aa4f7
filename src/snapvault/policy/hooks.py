"""Pre- and post-backup hooks: Python callables (library) or shell commands (stored policies)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from snapvault.errors import HookError

__all__ = ["HookError", "run_hooks"]


def run_hooks(hooks: Sequence[str | Callable[[], object]], *, stage: str, timeout: float = 3600) -> None:
    """Run hooks in order; raise HookError at the first failure.

    Shell commands run with ``/bin/sh -c`` and the caller's environment; their output is
    captured (the library prints nothing) and the tail of it goes into the error.
    """
    for hook in hooks:
        if callable(hook):
            try:
                hook()
            except Exception as e:
                raise HookError(f"{stage} hook {getattr(hook, '__name__', hook)!r} failed: {e}") from e
            continue
        try:
            proc = subprocess.run(["/bin/sh", "-c", hook], capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise HookError(f"{stage} hook {hook!r} could not run: {e}") from e
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            raise HookError(f"{stage} hook {hook!r} exited with {proc.returncode}: {tail[0]}")
