"""CLI policy commands: policy add/list/show/remove, run, due, forget, stats."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.policy import retention
from tests.cli.test_main import PASSWORD, assert_one_line_error, run
from tests.conftest import write
from tests.policy.retention_plugin import WIRE_ID, KeepOldest


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


# -- a stored policy whose retention strategy is not installed here ---------------------------


@pytest.fixture
def repo_with_a_plugin_policy(repo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str]]:
    """A repository holding "good" and "odd"; "odd" keeps by a strategy from a plugin.

    The CLI runs in a process where the plugin is not installed unless a test installs it.
    Returns the URL and the IDs of odd's two snapshots, oldest first.
    """
    src = write(tmp_path / "src" / "a.txt", "a").parent
    assert run("-r", repo_url, "policy", "add", "good", "-s", str(src), "--schedule", "0 2 * * *").returncode == 0
    monkeypatch.setattr(retention, "_REGISTERED", {})
    sv.register_strategy(KeepOldest)
    repo = sv.Repository.open(repo_url, PASSWORD)
    odd = sv.Policy(name="odd", sources=[str(src)], schedule="0 3 * * *", retention=KeepOldest(1))
    repo.save_policy(odd)
    engine = sv.Engine(repo)
    ids = [engine.run_policy(odd, now=datetime(2026, 1, d, tzinfo=UTC)).id for d in (1, 2)]
    return repo_url, ids


def broken_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line that names the unreadable policy, with exit code 1."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("policy odd: error: "), lines[0]
    assert WIRE_ID in lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


def broken_json(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """With --json: the same as a JSON line naming the policy, then the exit code's line."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    first, last = (json.loads(line) for line in proc.stderr.strip().splitlines())
    assert (first["level"], first["subject"]) == ("error", "policy odd")
    assert WIRE_ID in str(first["message"])
    assert (last["level"], last["type"], last["exit_code"]) == ("error", "POLICIES_UNREADABLE", 1)
    return first


def test_a_policy_whose_strategy_is_missing_hides_no_other(
    repo_with_a_plugin_policy: tuple[str, list[str]], cache_env: dict[str, str]
) -> None:
    url, odd_ids = repo_with_a_plugin_policy
    listed = run("-r", url, "policy", "list")
    line = broken_line(listed)
    assert "snapvault.retention" in line
    assert "policy remove odd" in line
    assert listed.stdout.split()[0] == "good"
    assert "odd" not in listed.stdout
    as_json = run("-r", url, "policy", "list", "--json")
    broken_json(as_json)
    assert [p["name"] for p in json.loads(as_json.stdout)] == ["good"]

    shown = assert_one_line_error(run("-r", url, "policy", "show", "odd"))
    assert WIRE_ID in shown
    assert "register_strategy" in shown
    assert json.loads(run("-r", url, "policy", "show", "good").stdout)["name"] == "good"

    due = run("-r", url, "due", "--json", env=cache_env)
    broken_json(due)
    assert [d["policy"] for d in json.loads(due.stdout)] == ["good"]

    forget = run("-r", url, "forget")
    broken_line(forget)
    assert "no policy with a retention rule" in forget.stdout
    snaps = {s["id"] for s in json.loads(run("-r", url, "snapshots", "--json").stdout)}
    assert snaps == set(odd_ids)

    st = run("-r", url, "stats", "--json")
    assert st.returncode == 0, st.stderr
    assert {r["policy"]: r["snapshots"] for r in json.loads(st.stdout)} == {"good": 0, "odd": 2}

    exists = assert_one_line_error(run("-r", url, "policy", "add", "odd", "-s", "/tmp"))
    assert "exists" in exists

    removed = run("-r", url, "policy", "remove", "odd")
    assert removed.returncode == 0, removed.stderr
    after = run("-r", url, "policy", "list")
    assert after.returncode == 0
    assert after.stderr == ""
    assert after.stdout.split()[0] == "good"
    assert run("-r", url, "forget").returncode == 0


def test_a_strategy_installed_as_an_entry_point_is_used_by_the_cli(
    repo_with_a_plugin_policy: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, odd_ids = repo_with_a_plugin_policy
    site = tmp_path / "site"
    info = site / "example_retention-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: example-retention\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[snapvault.retention]\n{WIRE_ID} = tests.policy.retention_plugin:KeepOldest\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[2])])}

    listed = run("-r", url, "policy", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["good", "odd"]
    forget = run("-r", url, "forget", "--json", env=env)
    assert forget.returncode == 0, forget.stderr
    [odd] = json.loads(forget.stdout)
    assert (odd["policy"], odd["keep"], odd["removed"]) == ("odd", [odd_ids[0]], [odd_ids[1]])
