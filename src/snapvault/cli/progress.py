"""Live progress of the long commands (``backup``, ``restore``, ``copy``, ``check``, ``prune``,
``run``, ``dr replicate``, ``dr drill``): a bar on stderr while the command runs.

The bar is drawn only when both stdout and stderr are terminals and neither ``--json`` nor
``--quiet`` is given; otherwise not one byte of it is written, so what a program reads from
either stream is the same as without it. With tqdm installed (the ``progress`` extra) it is a
tqdm bar: bytes done of the total, percent, rate, time left, and the files done; without
tqdm it is one line, redrawn at most five times a second: the bytes so far and the last file.
Both are cleared when the command's own lines come.

Each bar (:class:`snapvault.cli.progress_bar.Bar`) is the fsspec ``Callback`` the library's
long calls accept, so the library says what is known (its ``set_size`` and ``relative_update``)
and the bar only draws.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from snapvault.cli import output

if TYPE_CHECKING:
    from snapvault.cli.progress_bar import Bar

__all__ = ["bar", "shown"]


def shown() -> bool:
    """Whether this command may draw progress: stdout and stderr are both terminals, and
    neither --json nor --quiet was given."""
    return output.show_progress(_isatty(sys.stdout) and _isatty(sys.stderr))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by a test, or closed
        return False


@contextlib.contextmanager
def bar(desc: str, unit: str = "B") -> Iterator[Bar | None]:
    """A :class:`Bar` for the block when progress is :func:`shown`, else None (pass it on as
    ``callback=``: None draws nothing); the bar is taken off when the block ends."""
    if not shown():
        yield None
        return
    from snapvault.cli.progress_bar import Bar  # imported only when a bar is drawn

    b = Bar(desc, unit)
    try:
        yield b
    finally:
        b.close()
