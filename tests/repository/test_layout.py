"""The key layout: one module spells every key, and it agrees with docs/format.md and the store."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import snapvault as sv
from snapvault.policy.retention import KeepLast
from snapvault.repository import layout
from tests.conftest import write

ROOT = Path(__file__).resolve().parents[2]


def test_pack_keys_fan_out_by_the_first_two_hex_digits() -> None:
    pid = bytes.fromhex("ab" + "01" * 31)
    assert layout.pack_key(pid) == layout.pack_key(pid.hex()) == f"data/ab/{pid.hex()}"
    assert layout.snapshot_key("ff" * 32) == "snapshots/" + "ff" * 32
    assert layout.name_of(layout.pack_key(pid)) == pid.hex()
    assert layout.name_of(layout.CONFIG) == "config"


def test_the_layout_is_the_one_in_the_format_document() -> None:
    text = (ROOT / "docs" / "format.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)[/`]", section, re.M))
    assert documented == {layout.CONFIG, *layout.FOLDERS}


def test_every_object_a_repository_writes_lies_in_the_layout(local_repo: sv.Repository, tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "f", "x" * 5000).parent
    engine = sv.Engine(local_repo)
    pol = sv.Policy(name="p", sources=[str(src)], retention=KeepLast(1))
    local_repo.save_policy(pol)
    engine.run_policy(pol)
    engine.backup([src])
    local_repo.quarantine_packs([b"\0" * 32], "test")
    sv.forget(local_repo, now=datetime.now(UTC))
    root = Path(local_repo.url.removeprefix("file://"))
    other = write(tmp_path / "other" / "g", "y" * 5000).parent
    local_repo.delete_snapshot(engine.backup([other]).id)
    # A writer running across a prune: its record and the prune's mark both stay meanwhile.
    with local_repo.writer_session():
        local_repo.prune(now=datetime.now(UTC))
        keys = {
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
        }
        listed = {folder: set(local_repo.list_keys(folder)) for folder in layout.FOLDERS}
    folders = {k.split("/", 1)[0] for k in keys if k != layout.CONFIG}
    # The DR folders are written by DRPlan, not by anything above (tests/dr covers them).
    dr = {layout.DR_PLANS, layout.DR_FAILOVERS, layout.DR_DRILLS, layout.DR_REPLICATIONS}
    assert folders == set(layout.FOLDERS) - dr
    for key in keys - {layout.CONFIG}:
        folder = key.split("/", 1)[0]
        name = layout.name_of(key)
        expected = layout.pack_key(name) if folder == layout.DATA else layout.object_key(folder, name)
        assert key == expected
        assert key in listed[folder]
