"""The progress bar itself (see :mod:`snapvault.cli.progress`): an fsspec ``Callback`` that
draws on stderr, with tqdm when it is installed.

A module of its own so that a command whose progress is not shown (not a terminal, ``--json``,
``--quiet``) never imports fsspec or tqdm for it: they are a tenth of a short command's start.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import click
from fsspec.callbacks import Callback

__all__ = ["Bar"]


def _tqdm() -> Any:
    """tqdm's class, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    return tqdm


class Bar(Callback):  # type: ignore[misc]
    """A progress bar on stderr, told by the library as an fsspec ``Callback``.

    Parameters
    ----------
    desc : str
        What is done (``backup``, ``restore``...), at the bar's left.
    unit : str
        ``B`` for bytes (scaled, 1024-based), or a word counted as it is (``snapshot``).
    """

    def __init__(self, desc: str, unit: str = "B") -> None:
        super().__init__()
        self.unit = unit
        self.files = 0
        self._lock = threading.RLock()
        self._path = ""
        self._drawn = 0.0
        tqdm = _tqdm()
        self._bar: Any = None
        if tqdm is not None:
            self._bar = tqdm(
                desc=desc,
                total=None,
                unit=unit,
                unit_scale=unit == "B",
                unit_divisor=1024,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
                leave=False,
            )

    # -- what the library calls (fsspec calls ``call`` after each change) -------------------

    def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
        with self._lock:
            if self._bar is not None:
                if self.size is not None and self._bar.total != self.size:
                    self._bar.total = self.size
                    self._bar.refresh()
                self._bar.update(self.value - self._bar.n)
            else:
                self._line()

    def file_done(self, path: str) -> None:
        """One more file done; shown after the bar (``N files``)."""
        with self._lock:
            self.files += 1
            self._path = path
            if self._bar is not None:
                self._bar.set_postfix_str(f"{self.files} files", refresh=False)
            else:
                self._line()

    # -- the command's own lines ------------------------------------------------------------

    @contextlib.contextmanager
    def above(self) -> Iterator[None]:
        """Clear the bar while the block writes a line, then draw it again below that line."""
        with self._lock:
            if self._bar is not None:
                self._bar.clear()
            else:
                _clear_line()
            try:
                yield
            finally:
                if self._bar is not None:
                    self._bar.refresh()
                else:
                    self._drawn = 0.0

    def close(self) -> None:
        """Draw the bar's last state once (what the throttle held back), then take it off the
        terminal."""
        with self._lock:
            if self._bar is not None:
                self._bar.refresh()
                self._bar.close()
            elif self._drawn:
                _clear_line()

    # -- without tqdm -----------------------------------------------------------------------

    def _line(self) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.2:
            return
        self._drawn = now
        shown = self._path if len(self._path) <= 50 else "..." + self._path[-47:]
        done = f"{self.value / 2**20:10.1f} MiB" if self.unit == "B" else f"{self.value:10} {self.unit}s"
        click.echo(f"\r{done}  {shown:<50}", nl=False, err=True)


def _clear_line() -> None:
    click.echo("\r" + " " * 72 + "\r", nl=False, err=True)
