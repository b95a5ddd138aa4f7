"""CLI policy commands: policy add/list/show/remove, run, due, forget, stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_main import assert_one_line_error, run
from tests.conftest import write


@pytest.fixture
def repo_url(tmp_path: Path) -> str:
    url = str(tmp_path / "repo")
    assert run("-r", url, "init").returncode == 0
    return url


@pytest.fixture
def cache_env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_policy_add_list_show_remove(repo_url: str, tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "a.txt", "a").parent
    add = run(
        "-r", repo_url, "policy", "add", "docs", "--source", str(src), "--exclude", "*.tmp",
        "--type", "differential", "--schedule", "0 2 * * *", "--timezone", "Europe/Berlin",
        "--keep-daily", "7", "--keep-weekly", "4", "--keep-last", "3", "--verify", "sample:10%", "--tag", "t",
        "--pre-hook", "true",
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    shown = json.loads(run("-r", repo_url, "policy", "show", "docs").stdout)
    assert shown["backup_type"] == "differential"
    assert shown["schedule"] == "0 2 * * *"
    assert shown["retention"]["strategy"] == "union"
    kinds = sorted(s["strategy"] for s in shown["retention"]["strategies"])
    assert kinds == ["gfs", "keep-last"]
    assert shown["pre_hooks"] == ["true"]
    listed = json.loads(run("-r", repo_url, "policy", "list", "--json").stdout)
    assert [p["name"] for p in listed] == ["docs"]
    # From a file, round-tripping what show printed.
    f = write(tmp_path / "p.json", json.dumps({**shown, "name": "copy"}))
    assert run("-r", repo_url, "policy", "add", "--file", str(f)).returncode == 0
    again = json.loads(run("-r", repo_url, "policy", "show", "copy").stdout)
    assert {**again, "name": "docs"} == shown
    assert "exists" in assert_one_line_error(run("-r", repo_url, "policy", "add", "--file", str(f)))
    assert run("-r", repo_url, "policy", "add", "--file", str(f), "--replace").returncode == 0
    assert run("-r", repo_url, "policy", "remove", "copy").returncode == 0
    assert "no policy" in assert_one_line_error(run("-r", repo_url, "policy", "show", "copy"))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--schedule", "61 * * * *"], "schedule"),
        (["--keep-last", "-1"], "n"),
        (["--timezone", "Mars/Olympus"], "timezone"),
        (["--verify", "sometimes"], "verify"),
    ],
)
def test_invalid_policy_is_one_line_naming_the_field(
    repo_url: str, tmp_path: Path, args: list[str], field: str
) -> None:
    line = assert_one_line_error(run("-r", repo_url, "policy", "add", "p", "--source", str(tmp_path), *args))
    assert field in line


def test_run_due_stats_forget(repo_url: str, tmp_path: Path, cache_env: dict[str, str]) -> None:
    src = write(tmp_path / "src" / "a.txt", "a").parent
    add = run("-r", repo_url, "policy", "add", "docs", "-s", str(src), "--schedule", "0 2 * * *", "--keep-last", "1")
    assert add.returncode == 0
    assert run("-r", repo_url, "policy", "add", "manual", "-s", str(src)).returncode == 0

    due = json.loads(run("-r", repo_url, "due", "--json", env=cache_env).stdout)
    assert [(d["policy"], d["due"]) for d in due] == [("docs", True)]  # never ran: due; unscheduled: not listed
    ran = run("-r", repo_url, "due", "--run", env=cache_env)
    assert ran.returncode == 0, ran.stderr
    assert "policy docs: incremental snapshot" in ran.stdout
    after = json.loads(run("-r", repo_url, "due", "--json", env=cache_env).stdout)
    assert after[0]["due"] is False

    first = run("-r", repo_url, "run", "docs", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["policy"] == "docs"
    snaps = json.loads(run("-r", repo_url, "snapshots", "--json").stdout)
    assert len(snaps) == 2
    assert {s["policy"] for s in snaps} == {"docs"}

    st = json.loads(run("-r", repo_url, "stats", "--policy", "docs", "--json").stdout)
    assert st[0]["runs"] == 2
    assert st[0]["success_rate"] == 1.0

    dry = json.loads(run("-r", repo_url, "forget", "--dry-run", "--json").stdout)
    assert len(dry[0]["remove"]) == 1
    assert dry[0]["removed"] == []
    assert len(json.loads(run("-r", repo_url, "snapshots", "--json").stdout)) == 2
    real = run("-r", repo_url, "forget")
    assert real.returncode == 0
    assert "remove" in real.stdout
    assert "last 1" in real.stdout
    assert len(json.loads(run("-r", repo_url, "snapshots", "--json").stdout)) == 1
    assert run("-r", repo_url, "check", "--read-data").returncode == 0


def test_run_unknown_policy(repo_url: str) -> None:
    assert "no policy named 'nope'" in assert_one_line_error(run("-r", repo_url, "run", "nope"))
