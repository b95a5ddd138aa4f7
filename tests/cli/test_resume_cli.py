"""``restore`` through the CLI into a target that already holds part of the snapshot: files
there are skipped by size and mtime (by content with --verify-existing), the rest written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from snapvault.cli.exits import ExitCode
from tests.cli.conftest import Cli
from tests.conftest import write


def _restore(cli: Cli, target: Path, *flags: str) -> dict[str, int]:
    code, out, err = cli("restore", "latest", "--target", str(target), "--json", *flags)
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    return {"files": doc["files"], "files_skipped": doc["files_skipped"]}


def test_restore_skips_what_is_there_and_verify_existing_rewrites_what_differs(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(6):
        write(src / f"f{i}.txt", os.urandom(3000 + i))
    assert cli("backup", str(src))[0] == ExitCode.OK
    out = tmp_path / "out"
    assert _restore(cli, out) == {"files": 6, "files_skipped": 0}
    restored = sorted(out.rglob("f*.txt"))
    restored[0].unlink()
    changed = restored[1]
    st = changed.stat()
    good = changed.read_bytes()
    changed.write_bytes(b"x" * len(good))
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _restore(cli, out) == {"files": 1, "files_skipped": 5}
    assert changed.read_bytes() == b"x" * len(good)
    assert _restore(cli, out, "--verify-existing") == {"files": 1, "files_skipped": 5}
    assert changed.read_bytes() == good
    assert _restore(cli, out, "--no-skip-existing") == {"files": 6, "files_skipped": 0}
    code, said, err = cli("restore", "latest", "--target", str(out))
    assert code == ExitCode.OK, err
    assert "0 files" in said
    assert "6 files already there" in said
    for p in src.rglob("f*.txt"):
        assert next(out.rglob(p.name)).read_bytes() == p.read_bytes()
