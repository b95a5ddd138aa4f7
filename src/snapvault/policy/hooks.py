"""Pre- and post-backup hooks: Python callables (library) or shell commands (stored policies).

Trust model: a shell command stored in a policy record is repository content. Anyone who holds
the repository password can store a newer record, so a stored command must not run on a
machine merely because that machine runs the policy. A command runs only when the caller
allows its exact text, named by :func:`hook_hash` (the SHA-256 of the command, hex); the
``snapvault`` command line reads those hashes from a local file. A Python callable comes from
the caller's own process, never from a repository, and always runs.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Collection, Iterable, Sequence

from snapvault.errors import HookError

__all__ = ["HookError", "check_hooks_allowed", "hook_hash", "run_hooks", "shell_hooks"]

Hook = str | Callable[[], object]


def hook_hash(command: str) -> str:
    """The name under which a shell hook is allowed: SHA-256 of its exact text (UTF-8), hex."""
    return hashlib.sha256(command.encode()).hexdigest()


def shell_hooks(pre: Iterable[Hook], post: Iterable[Hook]) -> list[tuple[str, str]]:
    """The shell commands among a policy's hooks, as (stage, command), pre-hooks first."""
    return [(stage, h) for stage, hooks in (("pre", pre), ("post", post)) for h in hooks if isinstance(h, str)]


def check_hooks_allowed(policy: str, pre: Iterable[Hook], post: Iterable[Hook], allowed: Collection[str]) -> None:
    """Raise HookError naming the first shell command whose :func:`hook_hash` is not in ``allowed``.

    Called before any hook runs, so a refused policy runs nothing and backs up nothing.
    """
    for stage, command in shell_hooks(pre, post):
        digest = hook_hash(command)
        if digest not in allowed:
            raise HookError(
                f"policy {policy!r}: {stage}-hook {command!r} is not allowed on this machine "
                f"(sha256 {digest}); review it, then allow that hash"
            )


def run_hooks(hooks: Sequence[Hook], *, stage: str, timeout: float = 3600) -> None:
    """Run hooks in order; raise HookError at the first failure.

    Shell commands run with ``/bin/sh -c`` and the caller's environment; their output is
    captured (the library prints nothing) and the tail of it goes into the error. Whether a
    command may run at all is decided before, by :func:`check_hooks_allowed`.
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
