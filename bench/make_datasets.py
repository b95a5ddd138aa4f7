#!/usr/bin/env python3
"""Build the two benchmark trees, v1 and v2, deterministically.

    python3 make_datasets.py OUTDIR            # writes OUTDIR/v1 and OUTDIR/v2

v1 is real data plus three large files:
  stdlib/      a copy of this interpreter's standard library, bytecode caches
               included, site-packages left out:
               thousands of small text and binary files, real-world mix
  big/random.bin   128 MiB of incompressible bytes (seeded)
  big/pages.db     64 MiB of 4 KiB "database pages": many repeats, some noise
  big/app.log      64 MiB of log-like text built from the stdlib's own lines

v2 is v1 after a realistic day of change:
  - 1% of the stdlib files edited in the middle (a line inserted)
  - 0.5% of the stdlib files deleted, 20 new small files added
  - 4 KiB inserted in the middle of big/random.bin (content-defined chunking
    should store only the neighbourhood of the insert)
  - 1 MiB appended to big/app.log, 16 pages rewritten in big/pages.db
  - one new 32 MiB incompressible file, big/new.bin

Same interpreter version + same script => byte-identical trees.
"""

from __future__ import annotations

import random
import shutil
import sys
import sysconfig
from pathlib import Path

MiB = 1 << 20


def _copy_stdlib(dst: Path) -> None:
    src = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(
        src,
        dst,
        symlinks=True,
        ignore=shutil.ignore_patterns("site-packages"),
    )


def _rand(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def build_v1(root: Path) -> None:
    rng = random.Random(20261126)
    _copy_stdlib(root / "stdlib")
    big = root / "big"
    big.mkdir()
    with open(big / "random.bin", "wb") as f:
        for _ in range(128):
            f.write(_rand(rng, MiB))
    pages = [_rand(rng, 4096) for _ in range(512)]
    with open(big / "pages.db", "wb") as f:
        for _ in range(64 * MiB // 4096):
            page = bytearray(rng.choice(pages))
            page[:8] = _rand(rng, 8)  # a per-page header that differs
            f.write(page)
    lines = [
        line
        for p in _files(root / "stdlib")
        if p.suffix == ".py"
        for line in p.read_bytes().splitlines()
        if line.strip()
    ]
    with open(big / "app.log", "wb") as f:
        written, n = 0, 0
        while written < 64 * MiB:
            rec = b"2026-11-%02d %05d INFO " % (1 + n % 28, n % 99991) + rng.choice(lines) + b"\n"
            f.write(rec)
            written += len(rec)
            n += 1


def build_v2(v1: Path, root: Path) -> None:
    rng = random.Random(7)
    shutil.copytree(v1, root, symlinks=True)
    stdlib = _files(root / "stdlib")
    for p in rng.sample(stdlib, len(stdlib) // 100):
        b = p.read_bytes()
        i = len(b) // 2
        p.write_bytes(b[:i] + b"# edited for v2\n" + b[i:])
    for p in rng.sample(stdlib, len(stdlib) // 200):
        if p.exists():
            p.unlink()
    new = root / "stdlib" / "v2_additions"
    new.mkdir()
    for i in range(20):
        (new / f"note_{i:02d}.txt").write_bytes(_rand(rng, rng.randint(100, 20000)).hex().encode())
    big = root / "big"
    b = (big / "random.bin").read_bytes()
    i = len(b) // 2
    (big / "random.bin").write_bytes(b[:i] + _rand(rng, 4096) + b[i:])
    with open(big / "app.log", "ab") as f:
        f.write(b"2026-11-29 00000 INFO appended\n" * (MiB // 31))
    with open(big / "pages.db", "r+b") as f:
        for _ in range(16):
            f.seek(rng.randrange(64 * MiB // 4096) * 4096)
            f.write(_rand(rng, 4096))
    (big / "new.bin").write_bytes(_rand(rng, 32 * MiB))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    if (out / "v1").exists() or (out / "v2").exists():
        print(f"{out}/v1 or {out}/v2 exists; remove them first", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    build_v1(out / "v1")
    build_v2(out / "v1", out / "v2")
    for name in ("v1", "v2"):
        files = _files(out / name)
        size = sum(p.stat().st_size for p in files)
        print(f"{name}: {len(files)} files, {size / MiB:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
