"""The repository's other objects, hostile (docs/format.md, "config", "Master keys and key files",
"Snapshot manifests", "Policies, run records and quarantine", "Limits"), through the CLI.

- ``config`` and key files decide whether a repository opens at all: each hostile one makes
  the CLI refuse with one line (never a traceback, never a write), or, where the format says a
  reader passes it by (a key file that does not open, a costly one), open as before.
- A manifest that cannot be read hides no other snapshot: ``snapshots`` lists the rest and
  names it, ``check`` reports it, and restoring it is refused with one line naming it.
- Policy records, run records and quarantine records: sealed JSON like manifests; each hostile
  one is named, never a traceback.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.hostile.conftest import (
    ALL_COMMANDS,
    Run,
    Watch,
    assert_ok,
    assert_refused,
    assert_shapes,
    outcome,
    run_batch,
    snapvault,
)
from tests.hostile.forge import (
    AD_INDEX,
    AD_POLICY,
    AD_QUARANTINE,
    AD_RUN,
    AD_SNAPSHOT,
    Forge,
    h,
    key_file,
    master_keys_json,
)
from tests.test_hostile import Scene, file_node

pytestmark = pytest.mark.commits_damage

GOOD = b"the good file"
PW = PASSWORD.encode()


@dataclass(frozen=True)
class Base:
    root: Path
    repo: Path
    snapshot: str
    pack: str


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """A repository with one good snapshot; each case changes a copy of it."""
    root = tmp_path_factory.mktemp("repository-base")
    repo = sv.Repository.init(str(root / "repo"), PASSWORD, kdf=FAST_KDF, random=random.Random(83).randbytes)
    f = Forge(repo, seed=83)
    data = f.data(GOOD)
    tree = f.tree([file_node("good", [data], size=len(GOOD))])
    [(pack, _), _] = f.flush()
    return Base(root, root / "repo", f.manifest(tree, time="2026-06-01T00:00:00Z"), pack.hex())


def _copy(base: Base, tmp_path: Path) -> tuple[Path, sv.Repository, Forge]:
    repo_dir = tmp_path / "repo"
    shutil.copytree(base.repo, repo_dir)
    repo = sv.Repository.open(str(repo_dir), PASSWORD)
    return repo_dir, repo, Forge(repo, seed=89)


def _key(repo_dir: Path) -> Path:
    [key] = (repo_dir / "keys").iterdir()
    return key


def _config(repo_dir: Path) -> dict[str, Any]:
    return dict(json.loads((repo_dir / "config").read_bytes()))


def _write_config(repo_dir: Path, repo: sv.Repository, raw: bytes, *, rebind: bool) -> None:
    """Replace the config; with ``rebind``, replace the key file with one whose master keys
    hold the new config's hash, as someone who knows the password can."""
    (repo_dir / "config").write_bytes(raw)
    if rebind:
        _key(repo_dir).unlink()
        kf = key_file(master_keys_json(repo, config_hash=blake3.blake3(raw).hexdigest()), PW)
        (repo_dir / "keys" / h(kf)).write_bytes(kf)


def _config_json(repo_dir: Path, **change: Any) -> bytes:
    doc = _config(repo_dir)
    doc.update(change)
    return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"


def _downgrade(repo_dir: Path, repo: sv.Repository) -> None:
    """An unencrypted repository's config and key file in place of the real ones."""
    plain = sv.Repository.init(str(repo_dir.parent / "plain"), encryption="none", random=random.Random(103).randbytes)
    shutil.rmtree(repo_dir / "keys")
    shutil.copytree(Path(plain.url) / "keys", repo_dir / "keys")
    shutil.copyfile(Path(plain.url) / "config", repo_dir / "config")


# Each makes the config hostile; the CLI must refuse to open the repository, naming the config.
CONFIG_CASES: dict[str, Callable[[Path, sv.Repository], None]] = {
    "not-json": lambda d, r: _write_config(d, r, b"\xff\xfe", rebind=False),
    "json-nested-100000": lambda d, r: _write_config(d, r, b"[" * 100_000 + b"]" * 100_000, rebind=False),
    "a-json-list": lambda d, r: _write_config(d, r, b"[]", rebind=False),
    "format-other": lambda d, r: _write_config(d, r, _config_json(d, format="restic"), rebind=True),
    "version-2": lambda d, r: _write_config(d, r, _config_json(d, version=2), rebind=True),
    "over-64-kib": lambda d, r: _write_config(d, r, _config_json(d) + b" " * (64 << 10), rebind=True),
    "cipher-swapped": lambda d, r: _write_config(d, r, _config_json(d, encryption="chacha20-poly1305"), rebind=False),
    "cipher-unknown": lambda d, r: _write_config(d, r, _config_json(d, encryption="rot13"), rebind=True),
    "codec-unknown": lambda d, r: _write_config(d, r, _config_json(d, compression={"codec": "lz4"}), rebind=True),
    "pack-size-zero": lambda d, r: _write_config(d, r, _config_json(d, pack_size=0), rebind=True),
    "chunker-not-an-object": lambda d, r: _write_config(d, r, _config_json(d, chunker=7), rebind=True),
    "id-missing": lambda d, r: _write_config(
        d, r, json.dumps({k: v for k, v in _config(d).items() if k != "id"}).encode(), rebind=True
    ),
    # Swapped to an unencrypted repository's config and keys: with a password given, refused.
    "downgraded-to-none": _downgrade,
    "gone": lambda d, r: (d / "config").unlink(),
}


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_config(boxes: dict[str, Box], base: Base, name: str) -> None:
    box = boxes[f"config {name}"]
    box.watch.check()
    run = outcome(box.runs["snapshots"])
    if name == "downgraded-to-none":
        assert_refused(run, "NOT encrypted")
    elif name == "gone":
        assert_refused(run, "no snapvault repository")
    elif name == "version-2":
        assert_refused(run, "repository format version 2")
    else:
        assert_refused(run, "config")
    if ALL_COMMANDS:
        assert_refused(outcome(box.runs["check"]))
        assert_refused(outcome(box.runs["restore"]))
        assert list(box.scene.target.iterdir()) == []


# -- key files --------------------------------------------------------------------------------


def _add_key(repo_dir: Path, kf: bytes, name: str | None = None) -> None:
    (repo_dir / "keys" / (name or h(kf))).write_bytes(kf)


def _costly(repo: sv.Repository, memory_kib: int) -> bytes:
    # Its data does not matter: it must never be derived when another key file opens.
    return key_file(b"", PW, memory_kib=memory_kib, data=random.Random(97).randbytes(100))


@dataclass(frozen=True)
class KeyCase:
    make: Callable[[Path, sv.Repository], Any]
    #: What the line names when the repository is refused; None: it opens.
    names: tuple[str, ...] | None = None
    xfail: str | None = None


def _only(d: Path, kf: bytes) -> None:
    _key(d).unlink()
    _add_key(d, kf)


KEY_CASES: dict[str, KeyCase] = {
    # Beside the real key file: the format has a reader try each key file until one opens.
    "junk-beside": KeyCase(lambda d, r: _add_key(d, b"not json")),
    "json-nested-beside": KeyCase(lambda d, r: _add_key(d, b"[" * 100_000 + b"]" * 100_000)),
    "unknown-kdf-beside": KeyCase(lambda d, r: _add_key(d, key_file(b"", PW).replace(b'"argon2id"', b'"scrypt"'))),
    "over-64-kib-beside": KeyCase(lambda d, r: _add_key(d, key_file(b"", PW) + b" " * (64 << 10))),
    "name-not-its-hash-beside": KeyCase(lambda d, r: _add_key(d, key_file(b"", PW), name="00" * 32)),
    # Past the format's KDF limits, and so the costliest: never reached while another opens.
    "over-4-gib-beside": KeyCase(lambda d, r: _add_key(d, _costly(r, (4 << 20) + 1))),
    "passes-over-64-beside": KeyCase(lambda d, r: _add_key(d, key_file(b"", PW, iterations=65, data=b"x" * 60))),
    # Legal but costly: derived only when no cheaper key file opens.
    "costly-512-mib-beside": KeyCase(lambda d, r: _add_key(d, _costly(r, 512 << 10))),
    "other-password-beside": KeyCase(lambda d, r: _add_key(d, key_file(master_keys_json(r), b"another", seed=3))),
    # The only key file: what it holds decides.
    "keys-of-another-config": KeyCase(
        lambda d, r: _only(d, key_file(master_keys_json(r, config_hash="00" * 32), PW)), names=("config",)
    ),
    "master-keys-not-json": KeyCase(lambda d, r: _only(d, key_file(b"{", PW)), ("keys/",)),
    "master-keys-short": KeyCase(lambda d, r: _only(d, key_file(master_keys_json(r, id_key="QQ=="), PW)), ("keys/",)),
    "master-keys-non-canonical-base64": KeyCase(
        lambda d, r: _only(d, key_file(master_keys_json(r, id_key="A" * 43 + "B="), PW)), ("keys/",)
    ),
    "kdf-over-limits-alone": KeyCase(
        lambda d, r: _only(d, key_file(b"", PW, lanes=65, memory_kib=65 * 8, data=b"x" * 60)),
        ("keys/",),
    ),
    "none-at-all": KeyCase(lambda d, r: _key(d).unlink(), names=("no key files",)),
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
        for n, c in KEY_CASES.items()
    ],
)
def test_key_file(boxes: dict[str, Box], base: Base, name: str) -> None:
    box = boxes[f"keys {name}"]
    box.watch.check()
    run = outcome(box.runs["snapshots"])
    case = KEY_CASES[name]
    if case.names is None:
        assert_ok(run)
        assert base.snapshot[:8] in run.stdout
    else:
        assert_refused(run, *case.names)


def test_a_costly_key_file_and_a_wrong_password(base: Base, tmp_path: Path) -> None:
    """A planted 512 MiB key file is skipped (the default limit is 128 MiB): a mistyped password
    costs no more than that, and the message says a key file was not tried."""
    repo_dir, repo, _ = _copy(base, tmp_path)
    _add_key(repo_dir, _costly(repo, 512 << 10))
    run = snapvault("-r", str(repo_dir), "snapshots", cwd=tmp_path, password="wrong")
    assert "1 key file(s) over the Argon2 memory limit of 128 MiB" in assert_refused(run, "wrong password")
    # The right password still opens with the costly key file present.
    assert_ok(snapvault("-r", str(repo_dir), "snapshots", cwd=tmp_path))


# -- manifests --------------------------------------------------------------------------------


def _manifest(f: Forge, base: Base, **change: Any) -> str:
    doc = f.manifest_doc(base_tree(base))
    doc.update(change)
    return f.manifest(raw=json.dumps({k: v for k, v in doc.items() if v is not ...}).encode())


def base_tree(base: Base) -> str:
    return str(sv.Repository.open(str(base.repo), PASSWORD).load_manifest(base.snapshot).tree)


MANIFEST_CASES: dict[str, Callable[[Forge, Base], str]] = {
    "sealed-with-foreign-key": lambda f, b: f.put("snapshots", f.seal(b"{}", AD_SNAPSHOT, key=bytes(32))).rsplit(
        "/", 1
    )[1],
    "sealed-as-index": lambda f, b: f.put("snapshots", f.seal(b"{}", AD_INDEX)).rsplit("/", 1)[1],
    "stray-bytes": lambda f, b: f.put("snapshots", b"stray bytes").rsplit("/", 1)[1],
    "name-not-its-hash": lambda f, b: f.put("snapshots", f.seal(b"{}", AD_SNAPSHOT), name="ab" * 32).rsplit("/", 1)[1],
    "not-json": lambda f, b: f.manifest(raw=b"\xff{"),
    "a-json-list": lambda f, b: f.manifest(raw=b"[]"),
    "json-nested-100000": lambda f, b: f.manifest(raw=b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "tree-missing": lambda f, b: _manifest(f, b, tree=...),
    "tree-a-number": lambda f, b: _manifest(f, b, tree=7),
    "time-missing": lambda f, b: _manifest(f, b, time=...),
    "time-garbage": lambda f, b: _manifest(f, b, time="yesterday"),
    "paths-not-a-list": lambda f, b: _manifest(f, b, paths="/x"),
    "hostname-a-number": lambda f, b: _manifest(f, b, hostname=5),
    "errors-malformed": lambda f, b: _manifest(f, b, errors=[{"path": 1}]),
    # Over 16 MiB stored: refused before it is read whole.
    "over-16-mib": lambda f, b: _manifest(f, b, tags=["t" * 1000] * (17 << 10)),
}
# Legal manifests: readable, listed, restorable.
READABLE_CASES: dict[str, Callable[[Forge, Base], str]] = {
    "unknown-fields-kept": lambda f, b: _manifest(f, b, future={"x": [1, 2]}, time="2026-01-01T00:00:00Z"),
    "errors-20000": lambda f, b: _manifest(f, b, errors=[{"path": "/p", "error": "e"}] * 20_000),
    "time-fractional-z": lambda f, b: _manifest(f, b, time="2026-01-01T00:00:00.123456789Z"),
}


@dataclass(frozen=True)
class Manifests:
    root: Path
    repo: Path
    bad: dict[str, str]
    readable: dict[str, str]
    snapshots: Run
    check: Run


@pytest.fixture(scope="module")
def manifests(base: Base, tmp_path_factory: pytest.TempPathFactory) -> Manifests:
    """Every hostile manifest in one repository, next to the good snapshot; ``snapshots`` and
    ``check`` run once over all of them."""
    root = tmp_path_factory.mktemp("manifests")
    repo_dir, _, f = _copy(base, root)
    bad = {name: make(f, base) for name, make in MANIFEST_CASES.items()}
    readable = {name: make(f, base) for name, make in READABLE_CASES.items()}
    bad["tree-not-hex"] = _manifest(f, base, tree="z" * 64)
    watch = Watch([root])
    snaps = snapvault("-r", str(repo_dir), "snapshots", "--json", cwd=root)
    # Its stderr lines are judged apart (test_check_reports_each_problem_on_one_line).
    check = snapvault("-r", str(repo_dir), "check", "--json", cwd=root, shapes=False)
    watch.check()
    return Manifests(root, repo_dir, bad, readable, snaps, check)


def test_manifest_time_without_offset(base: Base, tmp_path: Path) -> None:
    repo_dir, _, f = _copy(base, tmp_path)
    sid = _manifest(f, base, time="2026-01-02T03:04:05")
    run = snapvault("-r", str(repo_dir), "snapshots", cwd=tmp_path)
    assert run.code == 1, run
    assert run.lines[0].startswith(f"snapshot {sid}: error: cannot be read: "), run


def test_manifest_tree_not_hex(manifests: Manifests, tmp_path: Path) -> None:
    """The manifest parses, its ``tree`` names no blob: every tree of it is unreadable."""
    sid = manifests.bad["tree-not-hex"]
    assert [p["kind"] for p in manifests.check.json()["problems"] if p["snapshot"] == sid] == ["tree"]
    scene = Scene(tmp_path)
    run = snapvault("-r", str(manifests.repo), "restore", sid, "--target", str(scene.target), cwd=tmp_path)
    assert_refused(run, sid[:16], "tree ID 'zzzz")
    assert list(scene.target.iterdir()) == []


@pytest.mark.parametrize("name", list(MANIFEST_CASES))
def test_unreadable_manifest(manifests: Manifests, base: Base, name: str) -> None:
    sid = manifests.bad[name]
    snaps = manifests.snapshots
    assert snaps.code == 1, snaps
    named = [line for line in snaps.lines if line.startswith(f"snapshot {sid}: error: cannot be read: ")]
    assert len(named) == 1, snaps
    listed = {s["id"] for s in snaps.json()}
    assert sid not in listed
    assert base.snapshot in listed
    problems = [p for p in manifests.check.json()["problems"] if p["snapshot"] == sid]
    assert [p["kind"] for p in problems] == ["snapshot"], manifests.check.json()["problems"]


def test_check_reports_each_problem_on_one_line(manifests: Manifests) -> None:
    assert_shapes(manifests.check)
    assert len(manifests.check.lines) == len(manifests.check.json()["problems"])


@pytest.mark.parametrize("name", list(READABLE_CASES))
def test_readable_manifest(manifests: Manifests, name: str) -> None:
    assert manifests.readable[name] in {s["id"] for s in manifests.snapshots.json()}
    assert not [p for p in manifests.check.json()["problems"] if p["snapshot"] == manifests.readable[name]]


@pytest.mark.parametrize("name", ["sealed-with-foreign-key", "over-16-mib"])
def test_restore_of_an_unreadable_manifest(manifests: Manifests, tmp_path: Path, name: str) -> None:
    sid = manifests.bad[name]
    scene = Scene(tmp_path)
    watch = Watch([manifests.root, tmp_path], target=scene.target)
    run = snapvault("-r", str(manifests.repo), "restore", sid, "--target", str(scene.target), cwd=tmp_path)
    watch.check()
    scene.assert_confined()
    assert_refused(run, sid[:16])
    assert list(scene.target.iterdir()) == []


def test_restore_latest_passes_the_unreadable_by(manifests: Manifests, base: Base, tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    run = snapvault("-r", str(manifests.repo), "restore", "latest", "--target", str(scene.target), cwd=tmp_path)
    assert_ok(run)
    assert base.snapshot[:8] in run.stdout
    assert (scene.target / "good").read_bytes() == GOOD


# -- policy records, run records, quarantine ---------------------------------------------------


def _record(f: Forge, folder: str, ad: bytes, doc: Any) -> str:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return f.put(folder, f.seal(raw, ad))


POLICY_CASES: dict[str, Callable[[Forge], str]] = {
    "sealed-with-foreign-key": lambda f: f.put("policies", f.seal(b"{}", AD_POLICY, key=bytes(32))),
    "not-json": lambda f: _record(f, "policies", AD_POLICY, b"\xff"),
    "json-nested-100000": lambda f: _record(f, "policies", AD_POLICY, b"[" * 100_000 + b"]" * 100_000),
    "a-json-list": lambda f: _record(f, "policies", AD_POLICY, []),
    "saved-at-garbage": lambda f: _record(f, "policies", AD_POLICY, {"name": "x", "saved_at": 5, "policy": None}),
    "policy-invalid": lambda f: _record(
        f, "policies", AD_POLICY, {"name": "bad", "saved_at": "2026-01-01T00:00:00+00:00", "policy": {"name": 5}}
    ),
    "over-1-mib": lambda f: _record(
        f, "policies", AD_POLICY, {"name": "big", "saved_at": "2026-01-01T00:00:00+00:00", "policy": "x" * (1 << 20)}
    ),
}


def test_policy_records(base: Base, tmp_path: Path) -> None:
    """``policy list`` lists the good policy and names each hostile record, one line each."""
    repo_dir, repo, f = _copy(base, tmp_path)
    repo.save_policy(sv.Policy(name="good", sources=["/srv"]))
    keys = {name: make(f) for name, make in POLICY_CASES.items()}
    watch = Watch([tmp_path])
    run = snapvault("-r", str(repo_dir), "policy", "list", cwd=tmp_path)
    watch.check()
    assert run.code == 1, run
    assert "good" in run.stdout
    for name, key in keys.items():
        if name == "policy-invalid":
            continue  # named by the policy's name, not the record's key
        assert any(key.rsplit("/", 1)[1] in line for line in run.lines), (name, run)
    assert any(line.startswith("policy bad: error: ") for line in run.lines), run


def test_policy_record_saved_at_without_offset(base: Base, tmp_path: Path) -> None:
    repo_dir, repo, f = _copy(base, tmp_path)
    repo.save_policy(sv.Policy(name="good", sources=["/srv"]))
    key = _record(f, "policies", AD_POLICY, {"name": "good", "saved_at": "2026-01-01T00:00:00", "policy": None})
    run = snapvault("-r", str(repo_dir), "policy", "list", cwd=tmp_path)
    assert run.code == 1, run
    assert any(key.rsplit("/", 1)[1] in line or "policy good: error" in line for line in run.lines), run


RUN_CASES: dict[str, Callable[[Forge], str]] = {
    "sealed-with-foreign-key": lambda f: f.put("runs", f.seal(b"{}", AD_RUN, key=bytes(32))),
    "not-a-run-record": lambda f: _record(f, "runs", AD_RUN, {}),
    "json-nested-100000": lambda f: _record(f, "runs", AD_RUN, b"[" * 100_000 + b"]" * 100_000),
    "over-1-mib": lambda f: _record(f, "runs", AD_RUN, {"policy": "good", "error": "x" * (1 << 20)}),
    "started-without-offset": lambda f: _record(
        f,
        "runs",
        AD_RUN,
        {
            "policy": "good",
            "job_id": "j",
            "status": "completed",
            "backup_type": "full",
            "started": "2026-01-01T00:00:00",
            "ended": "2026-01-01T00:00:01",
        },
    ),
}
_RUN_XFAIL: dict[str, str] = {}


def _good_run(f: Forge) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    doc = {"policy": "good", "job_id": "g", "status": "completed", "backup_type": "full", "started": now, "ended": now}
    _record(f, "runs", AD_RUN, doc)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=_RUN_XFAIL[n])] if n in _RUN_XFAIL else [])
        for n in RUN_CASES
    ],
)
def test_run_record(boxes: dict[str, Box], name: str) -> None:
    """``stats`` over a hostile run record: no traceback; if it fails, one line naming it."""
    box = boxes[f"runs {name}"]
    box.watch.check()
    run = outcome(box.runs["stats"])
    if run.code != 0:
        assert box.key is not None
        assert_refused(run, box.key.rsplit("/", 1)[1][:16])


QUARANTINE_CASES: dict[str, Callable[[Forge], str]] = {
    "sealed-with-foreign-key": lambda f: f.put("quarantine", f.seal(b"{}", AD_QUARANTINE, key=bytes(32))),
    "not-json": lambda f: _record(f, "quarantine", AD_QUARANTINE, b"\xff"),
    "json-nested-100000": lambda f: _record(f, "quarantine", AD_QUARANTINE, b"[" * 100_000 + b"]" * 100_000),
    "packs-not-hex": lambda f: _record(f, "quarantine", AD_QUARANTINE, {"packs": ["zz"], "reason": "r"}),
    "packs-not-a-list": lambda f: _record(f, "quarantine", AD_QUARANTINE, {"packs": 5, "reason": "r"}),
    "over-16-mib": lambda f: _record(f, "quarantine", AD_QUARANTINE, {"packs": [], "reason": "r" * (17 << 20)}),
}


@pytest.mark.parametrize("name", list(QUARANTINE_CASES))
def test_quarantine_record(boxes: dict[str, Box], name: str) -> None:
    """A quarantine record decides which packs the index leaves out; a hostile one is refused
    with one line naming it, as an index file is."""
    box = boxes[f"quarantine {name}"]
    box.watch.check()
    box.scene.assert_confined()
    assert box.key is not None
    assert_refused(outcome(box.runs["restore"]), box.key.rsplit("/", 1)[1][:16])
    assert list(box.scene.target.iterdir()) == []


def test_a_quarantined_pack_is_left_out(base: Base, tmp_path: Path) -> None:
    """A legal record quarantining the good pack: its file is damaged (not in the index)."""
    repo_dir, _, f = _copy(base, tmp_path)
    _record(f, "quarantine", AD_QUARANTINE, {"packs": [base.pack], "reason": "hostile"})
    scene = Scene(tmp_path)
    run = snapvault("-r", str(repo_dir), "restore", base.snapshot, "--target", str(scene.target), cwd=tmp_path)
    assert run.code == 1, run
    assert run.lines[0].startswith("error: good: "), run
    assert not (scene.target / "good").exists()
    check = snapvault("-r", str(repo_dir), "check", cwd=tmp_path)
    assert check.code == 1, check
    assert any(f"pack {base.pack} is quarantined" in line for line in check.lines), check


# -- the cases that each need a repository of their own, run side by side ---------------------


@dataclass(frozen=True)
class Box:
    """One case's copy of the repository, its restore target, and the watch on all of it."""

    root: Path
    key: str | None
    scene: Scene
    watch: Watch
    runs: dict[str, Run | AssertionError]


def _with_runs(f: Forge, repo: sv.Repository, make: Callable[[Forge], str]) -> str:
    repo.save_policy(sv.Policy(name="good", sources=["/srv"]))
    _good_run(f)
    return make(f)


@pytest.fixture(scope="module")
def boxes(base: Base, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Box]:
    out: dict[str, Box] = {}
    jobs: dict[str, tuple[tuple[str, ...], Path]] = {}

    def box(case: str, prepare: Callable[[Path, sv.Repository, Forge], Any], *commands: str) -> None:
        root = tmp_path_factory.mktemp(case.replace(" ", "-"))
        repo_dir, repo, f = _copy(base, root)
        key = prepare(repo_dir, repo, f)
        scene = Scene(root)
        out[case] = Box(root, key if isinstance(key, str) else None, scene, Watch([root], target=scene.target), {})
        for command in commands:
            args = {
                "snapshots": ("snapshots",),
                "check": ("check", "--read-data"),
                "restore": ("restore", base.snapshot, "--target", str(scene.target)),
                "stats": ("stats",),
            }[command]
            jobs[f"{case}|{command}"] = (("-r", str(repo_dir), *args), root)

    more = ("check", "restore") if ALL_COMMANDS else ()
    for name, make_config in CONFIG_CASES.items():
        box(f"config {name}", lambda d, r, f, m=make_config: m(d, r), "snapshots", *more)
    for name, key_case in KEY_CASES.items():
        box(f"keys {name}", lambda d, r, f, c=key_case: c.make(d, r), "snapshots", *more)
    for name, make_record in QUARANTINE_CASES.items():
        box(f"quarantine {name}", lambda d, r, f, m=make_record: m(f), "restore")
    for name, make_run in RUN_CASES.items():
        box(f"runs {name}", lambda d, r, f, m=make_run: _with_runs(f, r, m), "stats")

    for job, result in run_batch(jobs).items():
        case, command = job.split("|")
        out[case].runs[command] = result
    return out


# -- what readers pass by, and an unencrypted repository --------------------------------------


def test_temporary_names_and_unknown_folders_are_passed_by(base: Base, tmp_path: Path) -> None:
    """``.tmp-`` names are never repository objects and readers skip them; so are folders the
    format does not know, and a deletion mark that cannot be read does not stop a restore."""
    repo_dir, _, _ = _copy(base, tmp_path)
    for folder in ("keys", "index", "snapshots", "data/00", "policies", "runs", "quarantine", "deletions", "writers"):
        (repo_dir / folder).mkdir(parents=True, exist_ok=True)
        (repo_dir / folder / ".tmp-0123abcd").write_bytes(b"half written")
    (repo_dir / "future").mkdir()
    (repo_dir / "future" / ("ab" * 32)).write_bytes(b"a future format's object")
    scene = Scene(tmp_path)
    watch = Watch([tmp_path], target=scene.target)
    jobs = {
        "restore": (("-r", str(repo_dir), "restore", base.snapshot, "--target", str(scene.target)), tmp_path),
        "check": (("-r", str(repo_dir), "check", "--read-data"), tmp_path),
        "policy list": (("-r", str(repo_dir), "policy", "list"), tmp_path),
    }
    runs = run_batch(jobs)
    watch.check()
    for run in runs.values():
        assert_ok(outcome(run))
    assert (scene.target / "good").read_bytes() == GOOD


def test_unencrypted_repository_with_a_forged_checksum(tmp_path: Path) -> None:
    """Unencrypted objects carry a keyed checksum (its key stored in clear): it detects damage.
    A blob whose checksum does not match is a damaged file; the rest restores."""
    repo = sv.Repository.init(str(tmp_path / "plain"), encryption="none", random=random.Random(101).randbytes)
    f = Forge(repo, seed=101)
    good = f.data(GOOD)
    bad = f.blob(0, b"checksum forged")
    sealed = bad.sealed[:-1] + bytes([bad.sealed[-1] ^ 1])
    bad_id = f.add(type(bad)(bad.type, bad.id, sealed, bad.raw_length))
    sid = f.commit(f.tree([file_node("bad", [bad_id], size=15), file_node("good", [good], size=len(GOOD))]))
    scene = Scene(tmp_path)
    watch = Watch([tmp_path], target=scene.target)
    flag = "--insecure-no-password"
    runs = run_batch(
        {
            "restore": (("-r", str(tmp_path / "plain"), flag, "restore", sid, "--target", str(scene.target)), tmp_path),
            "check": (("-r", str(tmp_path / "plain"), flag, "check", "--read-data", "--json"), tmp_path),
            "with a password": (("-r", str(tmp_path / "plain"), "snapshots"), tmp_path),
        },
    )
    watch.check()
    scene.assert_confined()
    restore = outcome(runs["restore"])
    assert restore.code == 1, restore
    assert [line for line in restore.lines if line.startswith("error: ")] == [restore.lines[-2]], restore
    assert restore.lines[-2].startswith("error: bad: "), restore
    assert (scene.target / "good").read_bytes() == GOOD
    assert not (scene.target / "bad").exists()
    assert [p["blob"] for p in outcome(runs["check"]).json()["problems"]] == [bad_id]
    # The same repository, met without the flag (and a password in the environment): refused.
    assert_refused(outcome(runs["with a password"]), "NOT encrypted")
