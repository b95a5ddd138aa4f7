"""The trees of the scale and real-tree sections of bench/run.py, and the cache that keeps them.

- :func:`make_scale_tree`: small files of 1-4 KiB of incompressible bytes, half in wide
  directories of up to 100,000 files, half in chains of 40 nested directories with 100 files
  each (the scale rows: 200,000 and 1,000,000 files);
- :func:`make_text_tree`: text files of 1-8 KiB made of words and lines (compressible the way
  prose and notes are), half in folders of 2,000 files, half six directory levels deep;
- :func:`copy_site_packages`: a copy of the running interpreter's site-packages (sources,
  bytecode, shared libraries), whole or an evenly spread sample of files;
- :func:`apply_changes`: the change set of a "changed backup": the shares of bench/days.py's
  small files (3% edited by a line inserted at a line break, 1% deleted, 1% as many new text
  files added), seeded, picked from the sorted listing, so equal trees stay equal;
- :func:`cached_tree`: a generated tree kept in a cache folder between runs, next to a marker
  that records the generator, its version and its parameters; a tree whose marker differs (or
  that a build left unfinished) is built again.

Every generator is seeded: the same parameters give the same names and contents.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from days import ADDED, DELETED, EDITED

#: Bumped whenever a generator's output changes, so that cached trees are built again.
SCALE_VERSION = 2
TEXT_VERSION = 1
SCALE_SEED = 200_000
TEXT_SEED = 20261205
CHANGE_SEED = 20261206

WIDE_MAX = 100_000  # files per directory of the scale tree's wide half
TEXT_FOLDER = 2000  # files per folder in the text tree's flat half
TEXT_DEPTH = 6  # directory levels above each file of the deep half
TEXT_LEAF = 50  # files per directory of the deep half
TEXT_MIN, TEXT_MAX = 1024, 8192
ADDED_DIR = "bench-added"  # where apply_changes puts its new files


def make_scale_tree(root: Path, files: int) -> None:
    """Small files of 1-4 KiB of random bytes: half in a wide part, half in a deep part.

    The wide half is one directory (``wide/``) of up to WIDE_MAX files; a larger half is
    spread over directories of WIDE_MAX files each (``wide/w00/``, ``wide/w01/``, ...), because
    snapvault's format holds a directory of at most about 125,000 files' nodes (its 32 MiB tree
    limit, docs/format.md) and would leave a larger one out. The deep half sits in chains of
    40 nested directories (``deep/cNNN/l00/l01/...``) with 100 files in each directory.
    Seeded: the same ``files`` gives the same tree (200,000 files: the same tree as before the
    wide half was split).
    """
    rng = random.Random(SCALE_SEED)
    wide = root / "wide"
    wide.mkdir(parents=True)
    half = files // 2
    for i in range(half):
        folder = wide if half <= WIDE_MAX else wide / f"w{i // WIDE_MAX:02d}"
        if half > WIDE_MAX and i % WIDE_MAX == 0:
            folder.mkdir()
        (folder / f"f{i:06d}.txt").write_bytes(rng.randbytes(rng.randint(1024, 4096)))
    for i in range(files - half):
        d = i // 100
        chain, level = divmod(d, 40)
        deep = root / "deep" / f"c{chain:03d}" / "/".join(f"l{j:02d}" for j in range(level + 1))
        if i % 100 == 0:
            deep.mkdir(parents=True, exist_ok=True)
        (deep / f"f{i:06d}.txt").write_bytes(rng.randbytes(rng.randint(1024, 4096)))


class TextMaker:
    """Text of words and lines, from a seeded vocabulary with a Zipf-like spread of word use.

    A pool of lines (sentences, ``key = value`` pairs, indented calls, list items, blank lines)
    is drawn once; a file is a header line naming it, then lines drawn from the pool, cut at a
    line end to its exact size. Files share words and lines but no two are alike, so they
    compress the way text does while deduplicating across files only where text would.
    """

    def __init__(self, rng: random.Random, words: int = 6000, lines: int = 50_000) -> None:
        self.rng = rng
        sounds = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ae", "ou")]
        vocab: set[str] = set()
        while len(vocab) < words:
            n = rng.choice((1, 2, 2, 2, 3, 3, 4))
            vocab.add("".join(rng.choice(sounds) for _ in range(n)) + rng.choice(("", "", "n", "s", "t")))
        self.words = sorted(vocab)
        rng.shuffle(self.words)
        weights = [1.0 / (rank + 1) for rank in range(len(self.words))]
        total, self._cum = 0.0, []
        for w in weights:
            total += w
            self._cum.append(total)
        self.pool = [self._line() for _ in range(lines)]

    def _pick(self, k: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self._cum, k=k)

    def _line(self) -> bytes:
        kind = self.rng.random()
        if kind < 0.55:
            ws = self._pick(self.rng.randint(5, 16))
            text = " ".join(ws).capitalize() + self.rng.choice((".", ".", ".", "?", ":", ";"))
        elif kind < 0.7:
            a, b, c = self._pick(3)
            text = f"{a}_{b} = {self.rng.randint(0, 9999)} # {c}"
        elif kind < 0.85:
            a, *args = self._pick(self.rng.randint(2, 5))
            text = " " * self.rng.choice((4, 8, 12)) + f"{a}({', '.join(args)})"
        elif kind < 0.95:
            text = "- " + " ".join(self._pick(self.rng.randint(2, 8)))
        else:
            text = ""
        return text.encode() + b"\n"

    def file(self, title: str, size: int) -> bytes:
        """``size`` bytes of text: a header line with ``title``, then lines, ending at a newline."""
        parts = [f"{title}: {' '.join(self._pick(4))}\n".encode()]
        have = len(parts[0])
        while have < size:
            more = self.rng.choices(self.pool, k=max(4, (size - have) // 40))
            parts += more
            have += sum(map(len, more))
        return b"".join(parts)[: size - 1] + b"\n"


def _deep_dirs(leaves: int) -> list[str]:
    """``leaves`` directories ``TEXT_DEPTH`` levels deep, spread evenly over a balanced tree."""
    base = 2
    while base**TEXT_DEPTH < leaves:
        base += 1
    slots = base**TEXT_DEPTH
    out = []
    for j in range(leaves):
        k, digits = j * slots // leaves, []
        for _ in range(TEXT_DEPTH):
            k, d = divmod(k, base)
            digits.append(f"d{d}")
        out.append("/".join(reversed(digits)))
    return out


def make_text_tree(root: Path, files: int) -> None:
    """``files`` text files of 1-8 KiB: half in ``flat/gNNN`` folders of up to 2,000 files, half
    in ``deep/`` six directory levels down, up to 50 files a directory. Seeded."""
    rng = random.Random(TEXT_SEED)
    maker = TextMaker(rng)
    half = files // 2
    made: set[Path] = set()
    for i in range(half):
        folder = root / "flat" / f"g{i // TEXT_FOLDER:03d}"
        if folder not in made:
            folder.mkdir(parents=True)
            made.add(folder)
        name = f"note_{i:06d}" + (".md" if i % 3 == 0 else ".txt")
        (folder / name).write_bytes(maker.file(name, rng.randint(TEXT_MIN, TEXT_MAX)))
    deep = files - half
    dirs = _deep_dirs(-(-deep // TEXT_LEAF))
    for i in range(deep):
        folder = root / "deep" / dirs[i // TEXT_LEAF]
        if folder not in made:
            folder.mkdir(parents=True)
            made.add(folder)
        name = f"page_{i:06d}.txt"
        (folder / name).write_bytes(maker.file(name, rng.randint(TEXT_MIN, TEXT_MAX)))


def listing(root: Path) -> list[str]:
    """The sorted relative paths of every file and symlink under ``root`` (directories left out)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *links]:
            out.append(name if rel == "." else f"{rel}/{name}")
    return sorted(out)


def copy_site_packages(dst: Path, limit: int | None = None, src: Path | None = None) -> None:
    """Copy site-packages (this interpreter's ``purelib`` unless ``src``) to ``dst``.

    With ``limit``, only that many files, evenly spread over the sorted listing (a small tree
    with the same mix, for trying the harness).
    """
    src = src or Path(sysconfig.get_paths()["purelib"])
    if limit is None:
        subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
        return
    names = listing(src)
    step = max(1, len(names) // max(1, limit))
    for rel in names[::step][:limit]:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel, follow_symlinks=False)


@dataclass(frozen=True)
class ChangeSet:
    """What :func:`apply_changes` did: counts of files."""

    edited: int
    deleted: int
    added: int


def apply_changes(root: Path, *, seed: int = CHANGE_SEED) -> ChangeSet:
    """Change the tree at ``root`` in place: 3% of its files edited, 1% deleted, 1% added.

    An edit inserts one line at the first line break after a random point (or at the end); new
    files are text of 1-8 KiB under ``bench-added/``. Choices come from ``seed`` and the sorted
    listing, so applying this to equal trees leaves equal trees.
    """
    rng = random.Random(seed)
    files = [f for f in listing(root) if not (root / f).is_symlink()]
    edited = rng.sample(files, round(len(files) * EDITED))
    for rel in edited:
        path = root / rel
        data = path.read_bytes()
        at = data.find(b"\n", rng.randrange(len(data) + 1))
        at = len(data) if at < 0 else at + 1
        path.write_bytes(data[:at] + b"# changed by the benchmark %d\n" % rng.randrange(1 << 30) + data[at:])
    rest = sorted(set(files) - set(edited))
    deleted = rng.sample(rest, round(len(files) * DELETED))
    for rel in deleted:
        (root / rel).unlink()
    added = round(len(files) * ADDED)
    new = root / ADDED_DIR
    new.mkdir(exist_ok=True)
    maker = TextMaker(rng, words=2000, lines=2000)
    for i in range(added):
        name = f"added_{i:05d}.txt"
        (new / name).write_bytes(maker.file(name, rng.randint(TEXT_MIN, TEXT_MAX)))
    return ChangeSet(len(edited), len(deleted), added)


def cached_tree(cache: Path, name: str, params: dict[str, object], build: Callable[[Path], None]) -> Path:
    """The tree ``cache/name/tree``, built with ``build`` unless it is there and its marker
    (``cache/name/marker.json``) records exactly ``params``.

    The marker is removed before a build and written after it, and the tree is built under
    another name and renamed into place, so a build that was interrupted is built again.
    """
    folder = cache / name
    tree, marker, partial = folder / "tree", folder / "marker.json", folder / "tree.partial"
    want = json.loads(json.dumps(params))
    if tree.is_dir() and marker.exists():
        try:
            if json.loads(marker.read_text()) == want:
                return tree
        except ValueError:
            pass
    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for old in (tree, partial):
        if old.exists():
            shutil.rmtree(old)
    print(f"building {name} in {folder} ...", flush=True)
    start = time.perf_counter()
    build(partial)
    partial.rename(tree)
    marker.write_text(json.dumps(want, indent=1, sort_keys=True) + "\n")
    print(f"built {name} in {time.perf_counter() - start:.1f} s", flush=True)
    return tree


def scale_tree(cache: Path, files: int) -> Path:
    """The scale tree of ``files`` files, from the cache or built into it."""
    params = {"generator": "scale", "version": SCALE_VERSION, "seed": SCALE_SEED, "files": files}
    return cached_tree(cache, f"scale-{files}", params, lambda p: make_scale_tree(p, files))


def text_tree(cache: Path, files: int) -> Path:
    """The text tree of ``files`` files, from the cache or built into it."""
    params = {"generator": "text", "version": TEXT_VERSION, "seed": TEXT_SEED, "files": files}
    return cached_tree(cache, f"text-{files}", params, lambda p: make_text_tree(p, files))
