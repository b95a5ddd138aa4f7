"""One changed byte anywhere in a repository is caught; a restore never writes wrong bytes.

A small repository (a 3 MiB random file split over several packs, some text, a few folders)
is built once. Each case copies it to a fresh folder, damages one object there, and asserts
that the damage is detected: opening fails with a :class:`SnapvaultError` (config and key
files), or ``check(read_data=True)`` reports a problem that names the damaged pack, index file
or snapshot. For packs, a restore lists exactly the files whose blobs are hit (or the
directories whose trees are), restores every other file exactly, and never leaves a file with
wrong content under its final name; with ``stop_on_error`` it raises :class:`IntegrityError`
naming one of them. Damage to the snapshot's root tree leaves nothing to restore: it raises.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.pipeline.ids import BlobType
from tests.conftest import FAST_KDF, PASSWORD, write

SMALL_CHUNKS = sv.ChunkerParams(min_size=64 << 10, avg_size=256 << 10, max_size=1 << 20)
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
TMP_PREFIX = ".sv-restore-"
TRAILER = 8  # u32 header length + b"SVP1"


@dataclass(frozen=True)
class Blob:
    id: bytes
    type: BlobType
    offset: int
    length: int


@dataclass
class Pristine:
    """The undamaged repository and everything known about it."""

    path: Path
    snapshot: str
    files: dict[str, bytes]  # snapshot-relative path -> content
    blob_files: dict[bytes, set[str]]  # data blob -> files holding it
    packs: dict[str, list[Blob]]  # pack hex ID -> its blobs, by offset
    sizes: dict[str, int] = field(default_factory=dict)  # object key -> size
    tree_dirs: dict[bytes, set[str]] = field(default_factory=dict)  # tree blob -> its folders ("" the root)

    def objects(self, kind: str) -> list[str]:
        if kind == "config":
            return ["config"]
        return sorted(k for k in self.sizes if k.startswith(kind + "/"))

    def body_end(self, pack: str) -> int:
        return max(b.offset + b.length for b in self.packs[pack])

    def blob_at(self, pack: str, pos: int) -> Blob | None:
        for b in self.packs[pack]:
            if b.offset <= pos < b.offset + b.length:
                return b
        return None

    def files_in_pack(self, pack: str) -> set[str]:
        out: set[str] = set()
        for b in self.packs[pack]:
            out |= self.blob_files.get(b.id, set())
        return out

    def expected_loss(self, lost: set[bytes]) -> tuple[bool, set[str], set[str]]:
        """What a restore must report when the blobs ``lost`` are unreadable: whether it raises
        (the root tree is lost), the folders it lists (the topmost unreadable ones), and the
        files it lists (those with a lost data blob, outside the listed folders)."""
        dirs = set().union(*(self.tree_dirs.get(b, set()) for b in lost)) if lost else set()
        if "" in dirs:
            return True, set(), set()
        top = {d for d in dirs if not any(d.startswith(o + "/") for o in dirs)}
        files = {f for b in lost for f in self.blob_files.get(b, set())}
        return False, top, {f for f in files if not _under(f, top)}

    def files_under(self, dirs: set[str]) -> set[str]:
        return {f for f in self.files if _under(f, dirs)}


def _under(path: str, dirs: set[str]) -> bool:
    return any(path.startswith(d + "/") for d in dirs)


def _build(root: Path, encryption: str = "aes-256-gcm", big: int = 3 << 20) -> Pristine:
    src = root / "src"
    rng = random.Random(1234)
    if big:
        write(src / "bin" / "big.bin", rng.randbytes(big))
    write(src / "docs" / "a.txt", "".join(f"line {i} of some text\n" for i in range(2000)))
    write(src / "docs" / "deep" / "b.md", "# b\n" + "words " * 300)
    write(src / "docs" / "deep" / "c.bin", rng.randbytes(5000))
    write(src / "top.txt", "top level")
    write(src / "empty", b"")
    (src / "empty_dir").mkdir()
    path = root / "repo"
    password = None if encryption == "none" else PASSWORD
    repo = sv.Repository.init(
        str(path), password, kdf=FAST_KDF, encryption=encryption, pack_size=1 << 20, chunker=SMALL_CHUNKS
    )
    m = sv.Engine(repo, workers=2).backup([str(src)])
    assert repo.check(read_data=True).ok

    files: dict[str, bytes] = {}
    for p in src.rglob("*"):
        if p.is_file():
            files[str(p.relative_to("/"))] = p.read_bytes()

    blob_files: dict[bytes, set[str]] = {}
    tree_dirs: dict[bytes, set[str]] = {}
    stack = [(m.tree, "")]
    while stack:
        tid, rel = stack.pop()
        tree_dirs.setdefault(bytes.fromhex(tid), set()).add(rel)
        for n in repo.read_tree(tid):
            nrel = f"{rel}/{n.name}" if rel else n.name
            if n.type == "dir":
                assert n.subtree is not None
                stack.append((n.subtree, nrel))
            for c in n.content:
                blob_files.setdefault(bytes.fromhex(c), set()).add(nrel)

    packs: dict[str, list[Blob]] = {}
    for bid, loc in repo.index.items():
        packs.setdefault(loc.pack_id.hex(), []).append(Blob(bid, BlobType(loc.type), loc.offset, loc.length))
    for blobs in packs.values():
        blobs.sort(key=lambda b: b.offset)
    sizes = {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}
    return Pristine(path, m.id, files, blob_files, packs, sizes, tree_dirs)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    p = _build(tmp_path_factory.mktemp("pristine"))
    # the shape the tests rely on: several data packs, a tree pack, one index, one snapshot
    data_packs = [k for k, v in p.packs.items() if v[0].type == BlobType.DATA]
    assert len(data_packs) >= 3
    assert len(p.objects("index")) >= 1
    assert len(p.objects("snapshots")) == 1
    assert len(p.objects("keys")) == 1
    return p


# -- damaging a copy ------------------------------------------------------------------------


class Copies:
    """Fresh copies of the pristine repository, one per case."""

    def __init__(self, pristine: Pristine, tmp_path: Path) -> None:
        self.pristine = pristine
        self.tmp_path = tmp_path
        self.n = 0

    def make(self, damage: Callable[[Path], None]) -> Path:
        self.n += 1
        dst = self.tmp_path / f"copy{self.n}"
        shutil.copytree(self.pristine.path, dst)
        damage(dst)
        return dst

    def target(self) -> Path:
        return self.tmp_path / f"restore{self.n}"


def flip(key: str, pos: int, mask: int) -> Callable[[Path], None]:
    assert 0 < mask < 256

    def damage(repo_dir: Path) -> None:
        p = repo_dir / key
        data = bytearray(p.read_bytes())
        data[pos] ^= mask
        p.write_bytes(bytes(data))

    return damage


def pack_key(pack: str) -> str:
    return f"data/{pack[:2]}/{pack}"


def try_open(path: Path, password: str | None = PASSWORD) -> tuple[sv.Repository | None, sv.SnapvaultError | None]:
    try:
        return sv.Repository.open(str(path), password), None
    except sv.SnapvaultError as e:
        return None, e


def restored_files(target: Path) -> dict[str, bytes]:
    out = {}
    for p in target.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(target))] = p.read_bytes()
    return out


def assert_nothing_wrong_restored(pristine: Pristine, target: Path, damaged: set[str] = frozenset()) -> dict:
    """Every file under its final name is byte-identical to the source; none is half-written."""
    got = restored_files(target)
    for rel, data in got.items():
        name = rel.rsplit("/", 1)[-1]
        assert not name.startswith(TMP_PREFIX), f"temporary file left behind: {rel}"
        assert rel in pristine.files, f"unexpected file restored: {rel}"
        assert data == pristine.files[rel], f"{rel} restored with wrong content"
    for rel in damaged:
        assert rel not in got, f"{rel} was restored although its data is damaged"
    return got


def restore_outcome(
    repo: sv.Repository, pristine: Pristine, target: Path, *, stop_on_error: bool = False
) -> tuple[sv.RestoreResult | None, sv.SnapvaultError | None]:
    try:
        return sv.Restorer(repo, workers=2).restore(pristine.snapshot, target, stop_on_error=stop_on_error), None
    except sv.SnapvaultError as e:
        return None, e


def verify_restore(repo: sv.Repository, copies: Copies, lost: set[bytes], where: str) -> list[str]:
    """Restore past the damage, then again stopping at it; return what went wrong."""
    p = copies.pristine
    raises, dirs, files = p.expected_loss(lost)
    target = copies.target()
    result, raised = restore_outcome(repo, p, target)
    assert_nothing_wrong_restored(p, target, files | p.files_under(dirs))
    if raises:
        return [] if isinstance(raised, sv.IntegrityError) else [f"{where}: root tree lost, restore gave {raised!r}"]
    if result is None:
        return [f"{where}: restore raised {raised!r} instead of listing the damage"]
    fails = []
    listed = {e.path for e in result.errors}
    if listed != files | dirs:
        fails.append(f"{where}: restore listed {sorted(listed)}, expected {sorted(files | dirs)}")
    if set(restored_files(target)) != set(p.files) - files - p.files_under(dirs):
        fails.append(f"{where}: an intact file was not restored")
    if result.ok != (not lost):
        fails.append(f"{where}: result.ok is {result.ok} with {len(lost)} blobs lost")
    if listed:
        stop = target.with_name(target.name + "-stop")
        _, raised = restore_outcome(repo, p, stop, stop_on_error=True)
        assert_nothing_wrong_restored(p, stop, files | p.files_under(dirs))
        if not isinstance(raised, sv.IntegrityError) or raised.path not in listed:
            fails.append(f"{where}: stop_on_error gave {raised!r}, not an IntegrityError naming a listed path")
    return fails


def verify_pack_damage(copies: Copies, key: str, pos: int, mask: int) -> list[str]:
    """Damage one byte of a pack; return what went undetected or wrong (empty if all good)."""
    p = copies.pristine
    pack = key.rsplit("/", 1)[-1]
    path = copies.make(flip(key, pos, mask))
    where = f"{key}@{pos}^{mask:#04x}"
    repo, err = try_open(path)
    assert err is None, f"{where}: a damaged pack must not stop the repository opening: {err}"
    assert repo is not None
    fails = []
    report = repo.check(read_data=True)
    if report.ok:
        fails.append(f"{where}: check --read-data found nothing")
    elif not any(pr.pack == pack for pr in report.problems):
        fails.append(f"{where}: no problem names the pack: {[str(x) for x in report.problems]}")

    # The header or trailer (hit is None): restore reads blobs through the index, so it
    # must restore everything.
    hit = p.blob_at(pack, pos)
    return fails + verify_restore(repo, copies, {hit.id} if hit is not None else set(), where)


def verify_other_damage(copies: Copies, kind: str, key: str, pos: int, mask: int) -> list[str]:
    """Damage one byte of config, a key file, an index file or a snapshot."""
    p = copies.pristine
    path = copies.make(flip(key, pos, mask))
    where = f"{key}@{pos}^{mask:#04x}"
    repo, err = try_open(path)
    if err is not None:
        return []  # refused to open: detected
    assert repo is not None
    if kind in ("config", "keys"):
        report = repo.check(read_data=True)
        return [] if not report.ok else [f"{where}: repository opens and checks clean"]
    report = repo.check(read_data=True)
    fails = []
    name = key.rsplit("/", 1)[-1]
    if report.ok:
        fails.append(f"{where}: check --read-data found nothing")
    elif kind == "snapshots" and not any(pr.snapshot == name for pr in report.problems):
        fails.append(f"{where}: no problem names the snapshot: {[str(x) for x in report.problems]}")
    elif kind == "index" and not any(pr.key == key for pr in report.problems):
        fails.append(f"{where}: no problem names the index file: {[str(x) for x in report.problems]}")
    target = copies.target()
    _, raised = restore_outcome(repo, p, target)
    if not isinstance(raised, sv.IntegrityError):
        fails.append(f"{where}: restore gave {raised!r}, expected IntegrityError")
    assert_nothing_wrong_restored(p, target)
    if kind == "snapshots":
        assert not target.exists() or not any(target.iterdir())
    return fails


# -- positions ------------------------------------------------------------------------------


def benign_b64_positions(key_file: bytes) -> set[int]:
    """Positions of the last data character of each padded base64 string in a key file.

    Such a character carries unused low bits; changing only those does not change the decoded
    bytes. ``test_key_file_every_change_is_detected`` covers them separately.
    """
    out = set()
    i = 0
    while True:
        j = key_file.find(b"==", i)
        k = key_file.find(b'="', i)
        hits = [x for x in (j, k) if x != -1]
        if not hits:
            return out
        x = min(hits)
        out.add(x - 1)
        i = x + 2


LABELS = ["first", "last", "middle", "r0", "r1", "r2", "r3"]


def position(label: str, size: int, seed: str, avoid: set[int] = frozenset()) -> tuple[int, int]:
    rng = random.Random(f"{seed}:{label}")
    if label == "first":
        return 0, 0x01
    if label == "last":
        return size - 1, 0x80
    if label == "middle":
        pos = size // 2
        while pos in avoid:
            pos += 1
        return pos, 0x10
    while True:
        pos = rng.randrange(size)
        if pos not in avoid:
            return pos, 1 << rng.randrange(8)


# -- one flipped bit, every object kind ------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("kind", ["config", "keys", "snapshots", "index", "data"])
def test_flipped_bit_is_detected(pristine: Pristine, tmp_path: Path, kind: str, label: str) -> None:
    copies = Copies(pristine, tmp_path)
    fails: list[str] = []
    keys = pristine.objects(kind)
    assert keys
    for i, key in enumerate(keys):
        size = pristine.sizes[key]
        avoid = benign_b64_positions((pristine.path / key).read_bytes()) if kind == "keys" else set()
        pos, mask = position(label, size, f"{kind}{i}", avoid)
        if kind == "data":
            fails += verify_pack_damage(copies, key, pos, mask)
        else:
            fails += verify_other_damage(copies, kind, key, pos, mask)
    assert not fails, "\n".join(fails)


def test_pack_damage_in_every_blob_and_in_the_header(pristine: Pristine, tmp_path: Path) -> None:
    """Every blob of every pack (its first, middle and last byte), and the header and trailer."""
    copies = Copies(pristine, tmp_path)
    fails: list[str] = []
    for pack, blobs in sorted(pristine.packs.items()):
        key = pack_key(pack)
        size = pristine.sizes[key]
        end = pristine.body_end(pack)
        positions = [(end, 0x01), ((end + size - TRAILER) // 2, 0x04), (size - TRAILER, 0x01), (size - 2, 0x40)]
        for b in blobs:
            positions += [(b.offset, 0x02), (b.offset + b.length // 2, 0x08), (b.offset + b.length - 1, 0x20)]
        for pos, mask in positions:
            fails += verify_pack_damage(copies, key, pos, mask)
    assert not fails, "\n".join(fails)


def test_every_data_file_is_named_when_damaged(pristine: Pristine) -> None:
    """Sanity for the test above: the packs hold every non-empty file's data."""
    named = set().union(*pristine.blob_files.values())
    assert named == {rel for rel, data in pristine.files.items() if data}


# -- truncation, deletion, swapping -----------------------------------------------------------


def _truncate(key: str, new_size: int) -> Callable[[Path], None]:
    def damage(repo_dir: Path) -> None:
        p = repo_dir / key
        data = p.read_bytes()
        p.write_bytes(data[:new_size])

    return damage


@pytest.mark.parametrize("cut", ["last-byte", "trailer", "header", "into-last-blob", "half", "empty"])
def test_truncated_pack(pristine: Pristine, tmp_path: Path, cut: str) -> None:
    copies = Copies(pristine, tmp_path)
    for pack in sorted(pristine.packs):
        key = pack_key(pack)
        size, end = pristine.sizes[key], pristine.body_end(pack)
        new = {
            "last-byte": size - 1,
            "trailer": size - TRAILER,
            "header": end,
            "into-last-blob": end - 1,
            "half": size // 2,
            "empty": 0,
        }[cut]
        repo = sv.Repository.open(str(copies.make(_truncate(key, new))), PASSWORD)
        report = repo.check(read_data=True)
        assert not report.ok, f"{key} truncated to {new} of {size}"
        assert any(pr.pack == pack for pr in report.problems), report.problems

        lost = {b.id for b in pristine.packs[pack] if b.offset + b.length > new}
        fails = verify_restore(repo, copies, lost, f"{key} cut to {new}")
        assert not fails, "\n".join(fails)


@pytest.mark.parametrize("cut", ["into-last-blob", "half", "empty"])
def test_truncated_pack_found_without_read_data(pristine: Pristine, tmp_path: Path, cut: str) -> None:
    """``check`` documents that, even without reading data, "every indexed pack exists with
    the indexed size or more": a pack cut short of its blobs must be reported."""
    copies = Copies(pristine, tmp_path)
    pack = max(pristine.packs, key=lambda k: pristine.sizes[pack_key(k)])
    key = pack_key(pack)
    end = pristine.body_end(pack)
    new = {"into-last-blob": end - 1, "half": pristine.sizes[key] // 2, "empty": 0}[cut]
    repo = sv.Repository.open(str(copies.make(_truncate(key, new))), PASSWORD)
    report = repo.check(read_data=False)
    assert not report.ok, f"{key} cut from {pristine.sizes[key]} to {new} bytes; indexed blobs end at {end}"
    assert any(pr.pack == pack for pr in report.problems)


@pytest.mark.parametrize("read_data", [False, True])
def test_deleted_pack(pristine: Pristine, tmp_path: Path, read_data: bool) -> None:
    copies = Copies(pristine, tmp_path)
    for pack in sorted(pristine.packs):
        key = pack_key(pack)
        repo = sv.Repository.open(str(copies.make(lambda d, k=key: (d / k).unlink())), PASSWORD)
        report = repo.check(read_data=read_data)
        assert not report.ok
        missing = [pr for pr in report.problems if pr.kind == "pack" and pr.pack == pack]
        assert missing, report.problems
        assert "missing" in missing[0].message

        fails = verify_restore(repo, copies, {b.id for b in pristine.packs[pack]}, f"{key} deleted")
        assert not fails, "\n".join(fails)


def test_deleted_index_file(pristine: Pristine, tmp_path: Path) -> None:
    copies = Copies(pristine, tmp_path)
    for key in pristine.objects("index"):
        repo = sv.Repository.open(str(copies.make(lambda d, k=key: (d / k).unlink())), PASSWORD)
        report = repo.check(read_data=True)
        assert not report.ok
        unindexed = [pr for pr in report.problems if "not indexed" in pr.message]
        assert unindexed, report.problems
        assert all(pr.snapshot == pristine.snapshot for pr in unindexed)
        # the packs are still there; check notices nobody lists them
        assert len(report.warnings) == len(pristine.packs)

        target = copies.target()
        _, raised = restore_outcome(repo, pristine, target)
        assert isinstance(raised, sv.IntegrityError)
        assert_nothing_wrong_restored(pristine, target)


def test_deleted_snapshot_tree_pack_and_index_together(pristine: Pristine, tmp_path: Path) -> None:
    """With every index gone *and* a pack gone, check still reports (and does not crash)."""
    copies = Copies(pristine, tmp_path)
    tree_pack = next(k for k, v in pristine.packs.items() if v[0].type == BlobType.TREE)

    def damage(d: Path) -> None:
        for key in pristine.objects("index"):
            (d / key).unlink()
        (d / pack_key(tree_pack)).unlink()

    repo = sv.Repository.open(str(copies.make(damage)), PASSWORD)
    report = repo.check(read_data=True)
    assert not report.ok
    assert any(pr.kind == "tree" for pr in report.problems)


def _swap(a: str, b: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        (d / a).write_bytes((d / b).read_bytes())

    return damage


def test_pack_replaced_by_another_pack(pristine: Pristine, tmp_path: Path) -> None:
    """A pack whose bytes are another (valid) pack's: every blob lookup must fail to verify."""
    copies = Copies(pristine, tmp_path)
    packs = sorted(pristine.packs)
    for i, pack in enumerate(packs):
        other = packs[(i + 1) % len(packs)]
        repo = sv.Repository.open(str(copies.make(_swap(pack_key(pack), pack_key(other)))), PASSWORD)
        report = repo.check(read_data=True)
        assert not report.ok
        named = {pr.pack for pr in report.problems}
        assert pack in named, report.problems
        assert other not in named, report.problems

        fails = verify_restore(repo, copies, {b.id for b in pristine.packs[pack]}, f"{pack} replaced by {other}")
        assert not fails, "\n".join(fails)


def test_packs_exchanged(pristine: Pristine, tmp_path: Path) -> None:
    """Two data packs swapped with each other (both keep a valid pack's bytes)."""
    copies = Copies(pristine, tmp_path)
    data = sorted(k for k, v in pristine.packs.items() if v[0].type == BlobType.DATA)
    a, b = pack_key(data[0]), pack_key(data[1])

    def damage(d: Path) -> None:
        ba, bb = (d / a).read_bytes(), (d / b).read_bytes()
        (d / a).write_bytes(bb)
        (d / b).write_bytes(ba)

    repo = sv.Repository.open(str(copies.make(damage)), PASSWORD)
    report = repo.check(read_data=True)
    assert {data[0], data[1]} <= {pr.pack for pr in report.problems}
    # Packs are read several at a time; the report is the same in every run.
    assert [str(p) for p in repo.check(read_data=True).problems] == [str(p) for p in report.problems]
    lost = {b.id for b in pristine.packs[data[0]] + pristine.packs[data[1]]}
    fails = verify_restore(repo, copies, lost, "two packs exchanged")
    assert not fails, "\n".join(fails)


def test_snapshot_replaced_by_index_bytes(pristine: Pristine, tmp_path: Path) -> None:
    """Sealed objects are bound to what they are: an index file's bytes are not a snapshot."""
    copies = Copies(pristine, tmp_path)
    snap = pristine.objects("snapshots")[0]
    repo = sv.Repository.open(str(copies.make(_swap(snap, pristine.objects("index")[0]))), PASSWORD)
    report = repo.check(read_data=True)
    assert any(pr.snapshot == pristine.snapshot for pr in report.problems)
    with pytest.raises(sv.IntegrityError):
        sv.Restorer(repo).restore(pristine.snapshot, tmp_path / "t")


# -- key files --------------------------------------------------------------------------------


def _benign_b64_change(data: bytes, field_name: bytes) -> tuple[int, int]:
    """Position and bit of a single-bit change to the padded base64 string in ``field_name``
    that keeps its decoded bytes the same."""
    start = data.index(b'"' + field_name + b'": "') + len(field_name) + 5
    end = data.index(b'"', start)
    pad = data[start:end].count(b"=")
    assert pad, "the field has no padding"
    pos = end - pad - 1
    c = chr(data[pos])
    unused = 4 if pad == 2 else 2
    for bit in range(8):
        n = chr(data[pos] ^ (1 << bit))
        if n in B64 and B64.index(n) >> unused == B64.index(c) >> unused:
            return pos, 1 << bit
    raise AssertionError("no benign single-bit change")  # pragma: no cover


@pytest.mark.parametrize("change", ["salt-unused-bits", "newline-to-cr"])
def test_key_file_every_change_is_detected(pristine: Pristine, tmp_path: Path, change: str) -> None:
    """A key file is stored under the hash of its bytes (``keys/<hash>``); a changed byte must be
    caught even where the JSON still decodes to the same values."""
    key = pristine.objects("keys")[0]
    data = (pristine.path / key).read_bytes()
    if change == "salt-unused-bits":
        pos, mask = _benign_b64_change(data, b"salt")
    else:
        pos, mask = data.index(b"\n"), 0x0A ^ 0x0D
    copies = Copies(pristine, tmp_path)
    path = copies.make(flip(key, pos, mask))
    assert (path / key).read_bytes() != data
    repo, err = try_open(path)
    detected = err is not None or not repo.check(read_data=True).ok
    assert detected, (
        f"{key}: byte {pos} changed ({data[pos]:#04x} -> {data[pos] ^ mask:#04x}); open and check see nothing"
    )


def test_key_file_flips_break_opening(pristine: Pristine, tmp_path: Path) -> None:
    """A flip in the salt's significant bits, the sealed data or the KDF parameters: WrongPassword."""
    key = pristine.objects("keys")[0]
    data = (pristine.path / key).read_bytes()
    copies = Copies(pristine, tmp_path)
    for needle, offset in [(b'"salt": "', 9), (b'"data": "', 20), (b'"memory_kib": ', 14), (b'"lanes": ', 9)]:
        pos = data.index(needle) + offset
        _, err = try_open(copies.make(flip(key, pos, 0x02)))
        assert err is not None, f"{needle!r}+{offset}: opened anyway"


# -- other ciphers, and unencrypted repositories ------------------------------------------------


@pytest.fixture(scope="module", params=["chacha20-poly1305", "none"])
def other_pristine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    return _build(tmp_path_factory.mktemp(f"pristine-{request.param}"), request.param, big=300_000)


@pytest.mark.parametrize("label", ["first", "last", "middle", "r0"])
def test_flipped_bit_is_detected_other_ciphers(other_pristine: Pristine, tmp_path: Path, label: str) -> None:
    p = other_pristine
    password = None if json.loads((p.path / "config").read_text())["encryption"] == "none" else PASSWORD
    copies = Copies(p, tmp_path)
    fails = []
    for i, key in enumerate(sorted(p.sizes)):
        pos, mask = position(label, p.sizes[key], f"o{i}")
        path = copies.make(flip(key, pos, mask))
        repo, err = try_open(path, password)
        if err is not None:
            continue
        assert repo is not None
        report = repo.check(read_data=True)
        if report.ok:
            fails.append(f"{key}@{pos}^{mask:#04x}: not detected")
            continue
        target = copies.target()
        result, raised = restore_outcome(repo, p, target)
        hit_header = key.startswith("data/") and p.blob_at(key.rsplit("/", 1)[-1], pos) is None
        if raised is None and result is not None and result.ok and not hit_header:
            fails.append(f"{key}@{pos}^{mask:#04x}: restore succeeded")
        assert_nothing_wrong_restored(p, target)
    assert not fails, "\n".join(fails)


def test_unencrypted_key_file_change_is_detected(tmp_path: Path) -> None:
    """The key file of an unencrypted repository holds the chunker seed in clear JSON; a
    changed digit there silently changes how every later backup chunks (no deduplication
    against older snapshots). Opening or check must notice."""
    p = _build(tmp_path / "plain", "none", big=0)
    (key_file,) = (p.path / "keys").iterdir()
    key = f"keys/{key_file.name}"
    data = key_file.read_bytes()
    pos = data.index(b'"chunker_seed": ') + len(b'"chunker_seed": ') + 2  # a digit, never the sign
    copies = Copies(p, tmp_path)
    path = copies.make(flip(key, pos, 0x01))  # 0<->1, 2<->3, ... 8<->9
    changed = (path / key).read_bytes()
    assert changed != data
    assert chr(changed[pos]).isdigit()
    repo, err = try_open(path, None)
    detected = err is not None or not repo.check(read_data=True).ok
    assert detected, "a changed chunker seed in the plain key file goes unnoticed"
