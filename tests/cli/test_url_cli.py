"""``backup URL --source-option`` and ``restore --target URL --target-option`` through the CLI
(in this process, so a memory:// filesystem is shared with the test): the round trip is
bit-exact, what the target cannot hold is one warning line, and options for a local target
are a usage error."""

from __future__ import annotations

import json
import os
import uuid

import fsspec

from snapvault.cli.exits import ExitCode
from tests.cli.conftest import Cli


def test_a_memory_source_backed_up_and_restored_to_a_memory_target(cli: Cli) -> None:
    fs = fsspec.filesystem("memory")
    base = f"/cli-{uuid.uuid4().hex[:8]}"
    blobs = {f"{base}/in/a.txt": b"alpha", f"{base}/in/sub/b.bin": os.urandom(70_000)}
    for path, data in blobs.items():
        fs.pipe_file(path, data)
    code, out, err = cli("backup", "--json", f"memory://{base}/in")
    assert code == ExitCode.OK, err
    assert json.loads(out)["paths"] == [f"memory://{base}/in"]
    code, out, err = cli("restore", "latest", "--target", f"memory://{base}/out", "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    assert doc["files"] == 2
    assert doc["metadata_dropped"]["mode"] >= 2
    for path, data in blobs.items():
        restored = f"{base}/out/{path.removeprefix('/')}"
        assert fs.cat_file(restored) == data, restored
    # In text: one warning for everything the target cannot hold, not one per file.
    code, out, err = cli("restore", "latest", "--target", f"memory://{base}/again")
    assert code == ExitCode.OK
    (line,) = err.splitlines()
    assert line.startswith("warning: the target cannot hold: ")
    assert "mode (" in line


def test_target_options_for_a_local_directory_are_a_usage_error(cli: Cli, tmp_path: object) -> None:
    code, out, err = cli("restore", "latest", "--target", "out", "--target-option", "anon=true")
    assert (code, out) == (ExitCode.USAGE, "")
    assert "--target-option is for a URL target" in err
