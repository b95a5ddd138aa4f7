"""Eight more days of change after the shared datasets' v2, the same for every tool.

    python bench/days.py TREE DAY [--mib BYTES]     # applies day DAY (1..8) to TREE in place

A day changes a copy of v2 the way make_datasets.py's v2 changes v1, at a few percent:

- the small files (everything outside ``big/``): 3% edited (a line inserted at a line break
  near a random point), 1% deleted, and 1% as many new files added under ``days/dNN/``;
- ``big/random.bin``: 4 KiB inserted at a random point (content-defined chunking stores only
  the neighbourhood);
- ``big/app.log``: one MiB of log lines appended;
- ``big/pages.db``: 16 random 4 KiB pages rewritten;
- ``big/dayNN.bin``: 8 MiB of incompressible bytes, replacing the previous day's file.

Day N is seeded by N alone and picks files from the sorted listing of the tree it is given, so
applying days 1..N in order to identical trees gives identical trees (file contents and names;
times are whatever the file system gives). The bench (bench/run.py, ``--only prune``) and the
prune acceptance test (tests/test_prune_acceptance.py) both use it. ``mib`` scales the large
changes down for a small test tree; the shares of files do not change.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

SEED = 20261204
DAYS = 8
EDITED = 0.03
DELETED = 0.01
ADDED = 0.01
PAGE = 4096


@dataclass(frozen=True)
class DayChange:
    """What one day changed: counts of small files and bytes written into large ones."""

    day: int
    edited: int
    deleted: int
    added: int
    big_bytes: int


def _rand(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _insert_line(path: Path, rng: random.Random, line: bytes) -> None:
    data = path.read_bytes()
    at = rng.randrange(len(data) + 1)
    brk = data.find(b"\n", at)
    at = len(data) if brk < 0 else brk + 1
    path.write_bytes(data[:at] + line + data[at:])


def apply_day(root: Path, day: int, *, mib: int = 1 << 20) -> DayChange:
    """Apply day ``day`` (1-based) of change to the tree at ``root``, in place.

    Parameters
    ----------
    root : Path
        A tree shaped like the shared datasets (``big/`` and small files elsewhere), normally v2
        after days 1 .. ``day - 1``.
    day : int
        The day's number; it seeds every choice.
    mib : int
        How many bytes a "MiB" of the large changes is (the append and the day's new file).

    Returns
    -------
    DayChange
        What was changed.
    """
    rng = random.Random(SEED * 100 + day)
    big = root / "big"
    small = [p for p in _files(root) if big not in p.parents]
    edited = rng.sample(small, round(len(small) * EDITED))
    for p in edited:
        _insert_line(p, rng, b"# edited on day %d\n" % day)
    rest = sorted(set(small) - set(edited))
    deleted = rng.sample(rest, round(len(small) * DELETED))
    for p in deleted:
        p.unlink()
    added = round(len(small) * ADDED)
    new = root / "days" / f"d{day:02d}"
    new.mkdir(parents=True, exist_ok=True)
    for i in range(added):
        (new / f"note_{i:03d}.txt").write_bytes(_rand(rng, rng.randint(100, 20_000)).hex().encode())
    written = 0
    if (big / "random.bin").exists():
        data = (big / "random.bin").read_bytes()
        at = rng.randrange(len(data) + 1)
        (big / "random.bin").write_bytes(data[:at] + _rand(rng, PAGE) + data[at:])
        written += PAGE
    if (big / "app.log").exists():
        with open(big / "app.log", "ab") as f:
            n = 0
            while n < mib:
                rec = b"2026-12-%02d %05d INFO day %d record %d\n" % (day, n % 99991, day, rng.randrange(1 << 30))
                f.write(rec)
                n += len(rec)
        written += n
    if (big / "pages.db").exists():
        pages = (big / "pages.db").stat().st_size // PAGE
        with open(big / "pages.db", "r+b") as f:
            for _ in range(min(16, pages)):
                f.seek(rng.randrange(pages) * PAGE)
                f.write(_rand(rng, PAGE))
                written += PAGE
    big.mkdir(exist_ok=True)
    (big / f"day{day - 1:02d}.bin").unlink(missing_ok=True)
    (big / f"day{day:02d}.bin").write_bytes(_rand(rng, 8 * mib))
    written += 8 * mib
    return DayChange(day, len(edited), len(deleted), added, written)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tree", type=Path)
    ap.add_argument("day", type=int)
    ap.add_argument("--mib", type=int, default=1 << 20)
    args = ap.parse_args()
    print(apply_day(args.tree, args.day, mib=args.mib))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
