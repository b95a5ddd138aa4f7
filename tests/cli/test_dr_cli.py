"""``snapvault dr`` in-process against three local repositories: a plan added from SITE options
and from its JSON, replicate and status (exit 1 when a site is unreachable, so monitoring can
alert), drills that pass and one that names the damaged pack, failover refusing backups into
the old primary until failback, stored hooks run only once allowed, the HTML report, and
``due --run`` replicating a scheduled plan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from snapvault.cli import dr_cmds, output
from snapvault.dr import model
from tests.cli.conftest import Cli
from tests.conftest import FAST_KDF, PASSWORD, write

FILES = 12


@pytest.fixture(autouse=True)
def _plain_output_after() -> Iterator[None]:
    # The CLI keeps --json for the rest of its process; later tests call its parts directly.
    yield
    output.reset()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for i in range(FILES):
        write(root / f"d{i % 3}" / f"f{i}.txt", f"file {i} " * (200 + 50 * i))
    return root


@pytest.fixture
def sites(cli: Cli, tmp_path: Path) -> dict[str, str]:
    """SITE options for the CLI's repository (the primary) and two replicas, one sharing its
    content parameters and one with keys of its own; passwords come from PW_* variables."""
    for name, value in {"PW_LOCAL": PASSWORD, "PW_A": "pw-a", "PW_B": "pw-b"}.items():
        cli.monkeypatch.setenv(name, value)
    # The allow file and the lock folder of this test alone, not the user's.
    cli.monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    cli.monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    base = sv.Repository.open(cli.url, PASSWORD)
    sv.Repository.init(str(tmp_path / "a"), "pw-a", kdf=FAST_KDF, copy_params_from=base)
    sv.Repository.init(str(tmp_path / "b"), "pw-b", kdf=FAST_KDF)
    return {
        "local": f"name=local,url={cli.url},password-env=PW_LOCAL,region=on-prem",
        "a": f"name=a,url={tmp_path / 'a'},password-env=PW_A,region=eu-west-1",
        "b": f"name=b,url={tmp_path / 'b'},password_env=PW_B",  # underscores work too
    }


def _ok(result: tuple[int, str, str]) -> str:
    code, out, err = result
    assert code == 0, err
    return out


def _doc(result: tuple[int, str, str]) -> Any:
    return json.loads(_ok(result))


def _one_line_error(result: tuple[int, str, str], code: int = 1) -> str:
    got, out, err = result
    assert (got, out) == (code, ""), err
    (line,) = err.splitlines()
    assert line.startswith("snapvault: error: ")
    return line


def _add_plan(cli: Cli, sites: dict[str, str], *extra: str, name: str = "web") -> dict[str, Any]:
    doc: dict[str, Any] = _doc(
        cli("dr", "plan", "add", name, "--primary", sites["local"], "--replica", sites["a"],
            "--replica", sites["b"], "--rpo", "6h", "--rto", "1h", "--policy", "nightly", "--json", *extra)
    )  # fmt: skip
    assert doc["saved"] == name
    return doc


@pytest.fixture
def backed_up(cli: Cli, sites: dict[str, str], src: Path) -> Cli:
    """A policy 'nightly' that ran once into the primary, and the plan 'web' covering it."""
    _ok(cli("policy", "add", "nightly", "-s", str(src)))
    _ok(cli("run", "nightly"))
    _add_plan(cli, sites)
    return cli


def test_the_cli_spells_the_hook_stages_of_the_model() -> None:
    assert dr_cmds.HOOK_STAGES == model.HOOK_STAGES


def test_replicate_meets_the_rpo_and_drills_restore_every_replica(backed_up: Cli, tmp_path: Path) -> None:
    cli = backed_up
    out = _ok(cli("dr", "replicate", "web"))
    assert [line.split(", ")[0] for line in out.splitlines()] == [
        "plan web: local -> a: 1 copied",
        "plan web: local -> b: 1 copied",
    ]
    again = _doc(cli("dr", "replicate", "web", "--json"))
    assert (again["plan"], again["primary"], again["ok"]) == ("web", "local", True)
    assert [(s["site"], s["copied"], s["skipped"]) for s in again["sites"]] == [("a", 0, 1), ("b", 0, 1)]

    status = _doc(cli("dr", "status", "web", "--json"))
    assert (status["ok"], status["primary"], status["violations"]) == (True, "local", [])
    rpo = {s["site"]: [(o["objective"], o["verdict"]) for o in s["objectives"]] for s in status["sites"]}
    assert rpo == {name: [("rpo:nightly", "met"), ("rto", "unknown")] for name in ("local", "a", "b")}
    assert [s["primary"] for s in status["sites"]] == [True, False, False]

    drills = _doc(cli("dr", "drill", "web", "--json"))
    assert [(d["site"], d["ok"], d["files_restored"]) for d in drills] == [("a", True, FILES), ("b", True, FILES)]
    out = _ok(cli("dr", "drill", "web", "--site", "b"))
    assert out.startswith("plan web site b: drill passed: snapshot ")
    assert f"{FILES} files" in out
    assert "objective 1h 00m: met" in out
    # Every site now has a passed drill: the RTO is met too, and the listing says so.
    out = _ok(cli("dr", "status"))
    assert out.splitlines()[0].endswith("primary local; all objectives met")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["*", "a", "b"]
    assert all("rto met" in line for line in out.splitlines()[2:])


def test_failover_moves_run_to_the_new_primary_and_refuses_the_old_until_failback(
    backed_up: Cli, src: Path, tmp_path: Path
) -> None:
    cli = backed_up
    _ok(cli("dr", "replicate"))
    rec = _doc(cli("dr", "failover", "web", "--to", "b", "--reason", "on-prem lost", "--json"))
    assert (rec["kind"], rec["primary"], rec["previous"], rec["reason"]) == ("failover", "b", "local", "on-prem lost")

    # `run` asked of the old primary writes to the primary in force, and says so.
    code, out, err = cli("run", "nightly", "--json")
    assert code == 0, err
    assert "written to its primary in force" in err
    made = json.loads(out)["id"]
    assert made in {m.id for m in sv.Repository.open(str(tmp_path / "b"), "pw-b").snapshots()}
    assert made not in {m.id for m in sv.Repository.open(cli.url, PASSWORD).snapshots()}
    # The old primary itself refuses the covered policy's backups (the engine's own check).
    old = sv.Repository.open(cli.url, PASSWORD)
    with pytest.raises(sv.StalePrimaryError, match="failed over to site 'b'"):
        sv.Engine(old).run_policy(old.load_policy("nightly"))
    out = _ok(cli("dr", "status", "web"))
    assert "primary b;" in out.splitlines()[0]
    assert out.splitlines()[1].strip().startswith("failover to b at ")
    assert [line[0] for line in out.splitlines()[2:]] == [" ", " ", "*"]

    assert "is the primary" in _one_line_error(cli("dr", "failover", "web", "--to", "b", "--reason", "again"))
    out = _ok(cli("dr", "failback", "web", "--reason", "on-prem restored"))
    assert out.startswith("plan web: failback from b to local at ")
    assert "snapshot" in _ok(cli("run", "nightly"))  # the primary takes backups again


def test_report_writes_a_self_contained_html_page(backed_up: Cli, tmp_path: Path) -> None:
    cli = backed_up
    _ok(cli("dr", "replicate"))
    _ok(cli("dr", "drill", "web", "--site", "a"))
    page = tmp_path / "report.html"
    out = _ok(cli("dr", "report", "web", "--format", "html", "-o", str(page)))
    assert out == f"wrote the html report of plan web to {page}\n"
    assert "<svg" in page.read_text(encoding="utf-8")
    doc = _doc(cli("dr", "report", "web", "--json"))
    assert (doc["plan"], doc["format"], doc["output"]) == ("web", "json", None)
    assert isinstance(doc["report"], dict)


def test_an_unreachable_site_fails_replicate_and_status_while_the_others_get_their_copies(
    cli: Cli, sites: dict[str, str], src: Path, tmp_path: Path
) -> None:
    _ok(cli("policy", "add", "nightly", "-s", str(src)))
    _ok(cli("run", "nightly"))
    gone = f"name=c,url={tmp_path / 'nothing-here'},password-env=PW_A"
    _add_plan(cli, {**sites, "b": gone})

    code, out, err = cli("dr", "replicate", "web")
    assert code == 1
    assert out.startswith("plan web: local -> a: 1 copied")
    first, last = err.splitlines()
    assert first.startswith("plan web site c: error: not replicated: RepositoryNotFound: ")
    assert last == "snapvault: error: not replicated: web/c"

    code, out, err = cli("dr", "status", "--json")
    assert code == 1
    (status,) = json.loads(out)  # every plan: a list
    reach = {s["site"]: (s["reachable"], s["error_type"]) for s in status["sites"]}
    assert reach == {"local": (True, None), "a": (True, None), "c": (False, "RepositoryNotFound")}
    assert [v.split(" (")[0] for v in status["violations"]] == ["c: unreachable"]
    final = json.loads(err.splitlines()[-1])
    assert (final["type"], final["exit_code"]) == ("ObjectivesNotMet", 1)
    assert "plan web: c: unreachable" in final["message"]


def test_a_drill_that_finds_damage_exits_1_naming_snapshot_and_pack(backed_up: Cli, tmp_path: Path) -> None:
    cli = backed_up
    _ok(cli("dr", "replicate"))
    victim = max((p for p in (tmp_path / "a" / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 1
    victim.write_bytes(bytes(data))
    code, out, err = cli("dr", "drill", "web", "--json")
    assert code == 1
    a, b = json.loads(out)
    assert (a["site"], a["ok"], a["pack_id"]) == ("a", False, victim.name)
    assert b["ok"]
    lines = err.splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["subject"] == "plan web site a"
    final = json.loads(lines[1])
    assert final["type"] == "DrillFailed"
    assert victim.name in final["message"]
    assert a["snapshot_id"][:8] in final["message"]


def test_a_plan_is_added_once_shown_as_json_and_added_again_from_that_file(
    cli: Cli, sites: dict[str, str], tmp_path: Path
) -> None:
    doc = _add_plan(cli, sites, "--sample-files", "3", "--schedule", "0 */6 * * *", "--independent-keys")
    assert (doc["replaced"], doc["plan"]["shared_params"]) == (False, False)
    assert doc["plan"]["drill_settings"]["sample_files"] == 3
    assert "exists; use --replace" in _one_line_error(
        cli("dr", "plan", "add", "web", "--primary", sites["local"], "--replica", sites["a"], "--rpo", "1h")
    )
    shown = _doc(cli("dr", "plan", "show", "web"))
    assert shown == doc["plan"]
    assert "pw-" not in json.dumps(shown)  # references to passwords, never the passwords
    f = write(tmp_path / "plan.json", json.dumps({**shown, "name": "copy", "rpo": "2h"}))
    _ok(cli("dr", "plan", "add", "--file", str(f)))
    assert _doc(cli("dr", "plan", "show", "copy"))["rpo"] == "PT2H"
    assert "drop --rpo" in _one_line_error(cli("dr", "plan", "add", "--file", str(f), "--rpo", "1h"))
    assert "not 'other'" in _one_line_error(cli("dr", "plan", "add", "other", "--file", str(f)))
    assert [p["name"] for p in _doc(cli("dr", "plan", "list", "--json"))] == ["copy", "web"]
    assert _ok(cli("dr", "plan", "list")).splitlines()[1].split()[:3] == ["web", "local", "->"]
    assert _doc(cli("dr", "plan", "remove", "copy", "--json")) == {"removed": "copy"}
    assert "no DR plan named 'copy'" in _one_line_error(cli("dr", "plan", "show", "copy"))
    assert "no DR plan named 'copy'" in _one_line_error(cli("dr", "status", "copy"))


def test_bad_sites_and_values_are_one_line_each(cli: Cli, sites: dict[str, str]) -> None:
    def add(*args: str) -> tuple[int, str, str]:
        return cli("dr", "plan", "add", "web", "--replica", sites["a"], "--rpo", "6h", *args)

    code, _, err = add("--primary", "name=x,colour=red")
    assert code == 2
    assert "unknown key 'colour'" in err
    assert add("--primary", "name=x,url")[0] == 2  # an item without '='
    code, _, err = add("--primary", "name=bad name!,url=/x,no-password")
    assert code == 2
    assert "site name 'bad name!'" in err
    assert "rpo:" in _one_line_error(add("--primary", sites["local"], "--rpo", "soon"))
    line = _one_line_error(add("--primary", sites["local"], "--sample-files", "2", "--sample-percent", "5"))
    assert "sample_files or sample_percent" in line
    assert "timezone" in _one_line_error(add("--primary", sites["local"], "--schedule", "@daily", "--timezone", "Mars"))
    assert "a plan needs --primary" in _one_line_error(cli("dr", "plan", "add", "web", "--rpo", "1h"))


def test_stored_hooks_run_only_once_this_machine_allows_them(
    backed_up: Cli, sites: dict[str, str], tmp_path: Path
) -> None:
    cli = backed_up
    marker = tmp_path / "replicated.txt"
    hook = f'echo "$SNAPVAULT_DR_STAGE $SNAPVAULT_DR_SITE" >> {marker}'
    _add_plan(cli, sites, "--post-replicate", hook, "--replace")
    line = _one_line_error(cli("dr", "replicate", "web"))
    assert "post_replicate hook" in line
    assert "snapvault dr plan allow-hooks web" in line
    assert not marker.exists()
    assert sv.Repository.open(str(tmp_path / "a"), "pw-a").snapshots() == []  # refused before copying

    allowed = _doc(cli("dr", "plan", "allow-hooks", "web", "--json"))
    assert [(h["stage"], h["command"], h["already_allowed"]) for h in allowed["hooks"]] == [
        ("post_replicate", hook, False)
    ]
    assert Path(allowed["allow_file"]) == tmp_path / "config" / "snapvault" / "hooks.allow"
    _ok(cli("dr", "replicate", "web"))
    assert marker.read_text() == "post_replicate local\n"


def test_due_run_replicates_scheduled_plans_that_never_replicated(
    backed_up: Cli, sites: dict[str, str], tmp_path: Path
) -> None:
    cli = backed_up
    _add_plan(cli, sites, "--schedule", "* * * * *", "--replace")
    _add_plan(cli, sites, "--schedule", "0 0 1 1 *", name="yearly")
    out = _ok(cli("due"))
    assert [line.split()[:3] for line in out.splitlines()] == [["plan", "web", "due"], ["plan", "yearly", "due"]]

    rows = _doc(cli("due", "--run", "--json"))
    assert [(r["plan"], r["due"], r["last_run"]) for r in rows] == [("web", True, None), ("yearly", True, None)]
    copied = [[(s["site"], s["copied"]) for s in r["replication"]["sites"]] for r in rows]
    assert copied == [[("a", 1), ("b", 1)], [("a", 0), ("b", 0)]]
    assert sv.Repository.open(str(tmp_path / "b"), "pw-b").snapshots()  # the copy is there

    # The yearly plan's last run is now its replication: not due until next year.
    (yearly,) = [r for r in _doc(cli("due", "--json")) if r["plan"] == "yearly"]
    assert yearly["due"] is False
    assert yearly["last_run"] is not None


def test_due_run_exits_1_when_a_scheduled_replication_fails(
    cli: Cli, sites: dict[str, str], src: Path, tmp_path: Path
) -> None:
    _ok(cli("policy", "add", "nightly", "-s", str(src), "--schedule", "0 0 1 1 *"))
    gone = f"name=c,url={tmp_path / 'nothing-here'},password-env=PW_A"
    _add_plan(cli, {**sites, "b": gone}, "--schedule", "* * * * *")
    code, out, err = cli("due", "--run")
    assert code == 1
    # The policy ran first (it never ran: due), then the plan copied its snapshot to 'a'.
    assert out.splitlines()[0].split()[:2] == ["nightly", "due"]
    assert "plan web: 1 snapshot(s) copied from local" in out
    assert err.splitlines()[0].startswith("plan web site c: error: not replicated: RepositoryNotFound")
