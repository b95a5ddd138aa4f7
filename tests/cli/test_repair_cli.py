"""``snapvault repair index`` and ``repair snapshots`` through the CLI's own entry point: what
they print (one line per unreadable pack, per repaired snapshot and path, a summary, or one
JSON document), and their exit codes, on real repositories in local folders."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from snapvault.cli.main import run
from snapvault.pipeline.ids import object_hash
from tests.conftest import FAST_KDF, PASSWORD, write


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SNAPVAULT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SNAPVAULT_PASSWORD", PASSWORD)


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, sv.Manifest, Path]:
    """A repository whose one snapshot's data spans two packs (1 MiB packs, small chunks)."""
    path = tmp_path / "repo"
    repo = sv.Repository.init(
        str(path),
        PASSWORD,
        kdf=FAST_KDF,
        pack_size=1 << 20,
        chunker=sv.ChunkerParams(min_size=1024, avg_size=4096, max_size=16384),
    )
    src = tmp_path / "src"
    write(src / "big.bin", random.Random(3).randbytes(1_300_000))
    write(src / "late.txt", "written after the first pack was full\n")
    write(src / "a" / "kept.txt", "kept\n")  # walked first: in the first pack
    m = sv.Engine(repo, workers=1).backup([str(src)])
    return path, m, src


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _lose_second_data_pack(path: Path, m: sv.Manifest, src: Path) -> None:
    """Delete the pack holding ``late.txt`` (and the tail of ``big.bin``)."""
    repo = sv.Repository.open(str(path), PASSWORD)
    (node,) = (n for n in repo.read_tree(_subtree(repo, m.tree, src)) if n.name == "late.txt")
    loc = repo.index.get(bytes.fromhex(node.content[0]))
    assert loc is not None
    h = loc.pack_id.hex()
    (path / "data" / h[:2] / h).unlink()


def _subtree(repo: sv.Repository, tree: str, src: Path) -> str:
    for name in src.parts[1:]:
        (node,) = (n for n in repo.read_tree(tree) if n.name == name)
        assert node.subtree is not None
        tree = node.subtree
    return tree


def test_repair_index_with_the_index_deleted(
    repo: tuple[Path, sv.Manifest, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, m, src = repo
    blobs = len(sv.Repository.open(str(path), PASSWORD).index)
    shutil.rmtree(path / "index")
    assert _cli(capsys, "-r", str(path), "check")[0] == ExitCode.ERROR  # the snapshot's blobs are not indexed

    code, out, err = _cli(capsys, "-r", str(path), "repair", "index")
    assert code == ExitCode.OK, err
    assert err == ""
    assert out == f"indexed 3 packs ({blobs} blobs) in 1 new index files, removed 0 old ones\n"

    code, out, err = _cli(capsys, "-r", str(path), "check", "--read-data")
    assert code == ExitCode.OK, err
    code, _, err = _cli(capsys, "-r", str(path), "restore", m.id[:8], "--target", str(tmp_path / "out"))
    assert code == ExitCode.OK, err
    restored = tmp_path / "out" / os.path.relpath(src, "/")
    assert (restored / "big.bin").read_bytes() == (src / "big.bin").read_bytes()

    code, out, _ = _cli(capsys, "-r", str(path), "repair", "index", "--json")
    doc = json.loads(out)
    assert code == ExitCode.OK
    assert doc["packs_indexed"] == 3
    assert doc["unreadable"] == []
    assert len(doc["index_files_removed"]) == 1
    assert len(doc["index_files_written"]) == 1


def test_unreadable_packs_are_warnings_and_the_repair_succeeds(
    repo: tuple[Path, sv.Manifest, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = repo
    junk = os.urandom(3000)
    name = object_hash(junk).hex()
    write(path / "data" / name[:2] / name, junk)

    code, out, err = _cli(capsys, "-r", str(path), "repair", "index")
    assert code == ExitCode.OK
    (line,) = err.splitlines()
    assert line.startswith(f"warning: pack {name}: header unreadable: ")
    assert line.endswith("left out of the index")
    assert out.rstrip().endswith("1 unreadable packs left out")

    code, out, err = _cli(capsys, "-r", str(path), "repair", "index", "--json")
    assert code == ExitCode.OK
    assert [u["pack"] for u in json.loads(out)["unreadable"]] == [name]
    assert len(err.splitlines()) == 1


def test_repair_snapshots_dry_run_then_forget_broken(
    repo: tuple[Path, sv.Manifest, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, m, src = repo
    _lose_second_data_pack(path, m, src)

    code, out, err = _cli(capsys, "-r", str(path), "repair", "snapshots", "--dry-run")
    assert code == ExitCode.OK, err
    lines = out.splitlines()
    assert lines[0] == f"snapshot {m.id[:8]} would be repaired (1 truncated, 1 removed)"
    assert (
        lines[-1] == "checked 1 snapshots: 1 damaged, 2 paths would be truncated or removed; dry run, nothing written"
    )
    warned = sorted(err.splitlines())
    assert warned[0].startswith(f"warning: snapshot {m.id[:8]}: {src}/big.bin: repaired: truncated at byte ")
    assert warned[1].startswith(f"warning: snapshot {m.id[:8]}: {src}/late.txt: repaired: removed, chunk ")
    assert _cli(capsys, "-r", str(path), "snapshots", "--json")[1].count('"id"') == 1  # nothing written

    code, out, err = _cli(capsys, "-r", str(path), "repair", "snapshots", "--forget-broken", "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    (s,) = doc["snapshots"]
    assert s["original_id"] == m.id
    assert s["forgotten"]
    assert not doc["dry_run"]
    assert [(p["path"], p["action"]) for p in s["paths"]] == [
        (f"{src}/big.bin", "truncated"),
        (f"{src}/late.txt", "removed"),
    ]
    listing = json.loads(_cli(capsys, "-r", str(path), "snapshots", "--json")[1])
    assert [x["id"] for x in listing] == [s["new_id"]]
    assert "repaired" in listing[0]["tags"]
    assert {e["path"] for e in listing[0]["errors"]} == {f"{src}/big.bin", f"{src}/late.txt"}

    code, _, err = _cli(capsys, "-r", str(path), "restore", "latest", "--target", str(tmp_path / "out"))
    assert code == ExitCode.OK, err
    restored = tmp_path / "out" / os.path.relpath(src, "/")
    assert (restored / "a" / "kept.txt").read_text() == "kept\n"
    assert (src / "big.bin").read_bytes().startswith((restored / "big.bin").read_bytes())
    assert not (restored / "late.txt").exists()

    # The lost pack is still indexed until the index is rebuilt; then check is clean.
    assert _cli(capsys, "-r", str(path), "repair", "index")[0] == ExitCode.OK
    code, out, err = _cli(capsys, "-r", str(path), "check")
    assert code == ExitCode.OK, err


def test_repair_snapshots_human_output_names_the_new_snapshot(
    repo: tuple[Path, sv.Manifest, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, m, src = repo
    _lose_second_data_pack(path, m, src)
    code, out, _ = _cli(capsys, "-r", str(path), "repair", "snapshots")
    assert code == ExitCode.OK
    first = out.splitlines()[0]
    assert first.startswith(f"snapshot {m.id[:8]} repaired as ")
    assert first.endswith("(1 truncated, 1 removed)")
    again = _cli(capsys, "-r", str(path), "repair", "snapshots")[1].splitlines()[0]
    assert again == f"snapshot {m.id[:8]}: already repaired as {first.split()[4]} (1 truncated, 1 removed)"


def test_an_unreadable_manifest_is_named_and_exits_1(
    repo: tuple[Path, sv.Manifest, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = repo
    junk = os.urandom(200)
    name = object_hash(junk).hex()
    write(path / "snapshots" / name, junk)
    code, out, err = _cli(capsys, "-r", str(path), "repair", "snapshots")
    assert code == ExitCode.ERROR
    (line,) = err.splitlines()
    assert line.startswith(f"warning: snapshot {name}: ")
    assert line.endswith("; not repaired")
    assert out.splitlines() == ["checked 1 snapshots: 0 damaged, 0 paths truncated or removed, 1 unreadable"]


def test_errors_and_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = _cli(capsys, "-r", str(tmp_path / "empty"), "repair", "index")
    assert code == ExitCode.ERROR
    assert err.startswith("snapvault: error: no snapvault repository")
    assert len(err.splitlines()) == 1
    assert _cli(capsys, "-r", str(tmp_path / "empty"), "repair", "snapshots", "--no-such-flag")[0] == ExitCode.USAGE
    assert _cli(capsys, "-r", str(tmp_path / "empty"), "repair", "everything")[0] == ExitCode.USAGE
