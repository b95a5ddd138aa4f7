"""``forget ID...``, ``forget --keep-*``, ``snapshots`` filters and ``tag`` as a user runs them:
the reasons printed, the JSON documents, what is left in the repository, one-line refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from tests.cli.test_key_cli import Cli, one_line_error
from tests.conftest import FAST_KDF, PASSWORD, write

T0 = datetime(2020, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Cli, dict[str, sv.Manifest], str]:
    """Snapshots of two hosts a day apart, one made by a policy with a KeepLast(5) retention;
    the CLI, the manifests by name, and the backed-up folder."""
    src = write(tmp_path / "src" / "f.txt", "data").parent
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    engine = sv.Engine(repo)
    out = {}
    for day, (name, host, tags) in enumerate(
        [("w1", "web", ["a"]), ("w2", "web", ["a", "b"]), ("d1", "db", ["b"]), ("w3", "web", [])]
    ):
        out[name] = engine.backup([str(src)], hostname=host, tags=tags, now=T0 + timedelta(days=day))
    policy = sv.Policy(name="nightly", sources=[str(src)], retention=sv.retention.KeepLast(5))
    repo.save_policy(policy)
    out["p1"] = engine.run_policy(policy, hostname="db", now=T0 + timedelta(days=5))
    return Cli(repo.url, monkeypatch, capsys), out, str(src)


def _listed(cli: Cli, *args: str) -> list[str]:
    code, out, err = cli("snapshots", "--json", *args)
    assert code == ExitCode.OK, err
    return [m["id"] for m in json.loads(out)]


def test_snapshots_filters_and_latest_per_group(made: tuple[Cli, dict[str, sv.Manifest], str]) -> None:
    cli, s, src = made
    ids = {k: m.id for k, m in s.items()}
    assert _listed(cli) == [ids[k] for k in ("w1", "w2", "d1", "w3", "p1")]
    assert _listed(cli, "--host", "db") == [ids["d1"], ids["p1"]]
    assert _listed(cli, "--tag", "a,b") == [ids["w2"]]
    assert _listed(cli, "--tag", "a", "--tag", "b") == [ids[k] for k in ("w1", "w2", "d1")]
    assert _listed(cli, "--policy", "nightly") == [ids["p1"]]
    assert _listed(cli, "--path", src, "--host", "web", "--latest", "2") == [ids["w2"], ids["w3"]]
    assert _listed(cli, "--path", "/no/such/dir") == []
    assert _listed(cli, "--latest", "1") == [ids["w3"], ids["p1"]]  # newest of each host and paths
    code, out, _ = cli("snapshots", "--host", "db")
    assert code == ExitCode.OK
    assert out.splitlines()[-1] == "2 snapshots"


def test_forget_with_adhoc_rules_prints_reasons_then_removes(made: tuple[Cli, dict[str, sv.Manifest], str]) -> None:
    cli, s, _ = made
    code, out, err = cli("forget", "--keep-last", "1", "--keep-tag", "b", "--dry-run")
    assert code == ExitCode.OK, err
    lines = out.splitlines()
    # Grouped by host and paths; the policy-made snapshot counts like any other.
    assert any(line.startswith("host db paths ") and f"keep   {s['p1'].short_id}  last 1" in line for line in lines)
    assert any(f"keep   {s['d1'].short_id}  tag:b" in line for line in lines)
    assert any(f"keep   {s['w2'].short_id}  tag:b" in line for line in lines)
    assert any(f"would remove {s['w1'].short_id}  not kept by any rule" in line for line in lines)
    assert len(_listed(cli)) == 5
    # With rules, --policy selects that policy's snapshots (its stored retention is not used).
    code, out, err = cli("forget", "--policy", "nightly", "--keep-within", "1s", "--dry-run", "--json")
    assert code == ExitCode.OK, err
    assert [(g["keep"], g["remove"]) for g in json.loads(out)] == [([], [s["p1"].id])]
    code, out, err = cli("forget", "--keep-last", "1", "--host", "web", "--json")
    assert code == ExitCode.OK, err
    [group] = json.loads(out)
    assert group["group"]["host"] == "web"
    assert group["group"]["tags"] is None
    assert group["keep"] == [s["w3"].id]
    assert group["removed"] == [s["w2"].id, s["w1"].id]
    assert group["reasons"][s["w3"].id] == ["last 1"]
    assert set(_listed(cli)) == {s["d1"].id, s["w3"].id, s["p1"].id}


def test_forget_by_id_and_latest_of_a_filter(made: tuple[Cli, dict[str, sv.Manifest], str]) -> None:
    cli, s, _ = made
    code, out, err = cli("forget", s["w1"].short_id, "latest", "--host", "db")
    assert code == ExitCode.OK, err
    assert f"remove {s['p1'].short_id}  named by ID" in out
    assert f"remove {s['w1'].short_id}  named by ID" in out
    assert set(_listed(cli)) == {s["w2"].id, s["d1"].id, s["w3"].id}


def test_the_policy_form_and_prune_still_work_beside_the_new_forms(
    made: tuple[Cli, dict[str, sv.Manifest], str],
) -> None:
    cli, s, _ = made
    code, out, err = cli("forget", "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out) == [
        {"policy": "nightly", "keep": [s["p1"].id], "remove": [], "reasons": {s["p1"].id: ["last 5"]}, "removed": []}
    ]
    code, out, err = cli("forget", "--keep-last", "1", "--group-by", "", "--prune", "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    assert doc["forget"][0]["group"] == {"host": None, "paths": None, "tags": None}
    assert doc["prune"]["snapshots"] == 1
    assert _listed(cli) == [s["p1"].id]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["forget", "--host", "web"], "IDs or --keep-* rules"),
        (["forget", "latest", "--keep-last", "1"], "not both"),
        (["forget", "ffffffff"], "no snapshot matches"),
        (["forget", "--keep-daily", "1", "--group-by", "hostname"], "cannot group by"),
        (["forget", "--keep-within", "3 months"], "duration"),
        (["tag", "latest"], "--add, --remove or --set"),
        (["tag", "latest", "--set", "x", "--add", "y"], "cannot be combined"),
    ],
)
def test_refusals_are_one_line_and_remove_nothing(
    made: tuple[Cli, dict[str, sv.Manifest], str], args: list[str], needle: str
) -> None:
    cli, s, _ = made
    assert needle in one_line_error(cli(*args))
    assert len(_listed(cli)) == len(s)


def test_tag_supersedes_the_manifest_and_skips_unchanged(made: tuple[Cli, dict[str, sv.Manifest], str]) -> None:
    cli, s, _ = made
    code, out, err = cli("tag", s["w1"].short_id, "--add", "keep,x", "--remove", "a")
    assert code == ExitCode.OK, err
    [new_id] = set(_listed(cli)) - {m.id for m in s.values()}
    assert out.strip() == f"snapshot {s['w1'].short_id} -> {new_id[:8]}: tags keep,x"
    code, out, _ = cli("snapshots", "--json", "--tag", "keep")
    [shown] = json.loads(out)
    assert shown["retagged_from"] == s["w1"].id
    assert shown["tree"] == s["w1"].tree
    # Without IDs: every snapshot the filters select; an unchanged one is left as it is.
    code, out, err = cli("tag", "--host", "db", "--set", "", "--json")
    assert code == ExitCode.OK, err
    rows = {r["old_id"]: r for r in json.loads(out)}
    assert rows[s["p1"].id]["changed"] is False
    assert rows[s["d1"].id]["changed"] is True
    assert rows[s["d1"].id]["tags"] == []
    assert s["p1"].id in _listed(cli)
    assert s["d1"].id not in _listed(cli)
    assert len(_listed(cli)) == len(s)


def test_restore_and_ls_take_latest_of_the_filters(
    made: tuple[Cli, dict[str, sv.Manifest], str], tmp_path: Path
) -> None:
    cli, s, _ = made
    code, out, err = cli("restore", "latest", "--host", "web", "--tag", "a", "--target", str(tmp_path / "out"))
    assert code == ExitCode.OK, err
    assert f"restored snapshot {s['w2'].id[:8]}" in out
    code, out, err = cli("ls", "latest", "--policy", "nightly", "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out)
    code, _, err = cli("ls", "latest", "--host", "nobody")
    assert code == ExitCode.ERROR
    assert "no snapshot matches the filters" in err
