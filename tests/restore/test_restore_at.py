"""Point-in-time restore: ``Restorer.restore(at=...)`` without a policy picks the newest snapshot
of this host (or ``hostname=``) and, if given, exactly these paths, taken at or before ``at``;
``restore --at TIME`` does it on the command line with ISO 8601 times, local times and dates."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.cli.exits import ExitCode
from tests.cli.test_key_cli import Cli, one_line_error
from tests.conftest import write

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HERE = socket.gethostname()


@pytest.fixture
def history(local_repo: sv.Repository, tmp_path: Path) -> tuple[sv.Repository, Path, Path, dict[str, sv.Manifest]]:
    """Snapshots of folder A (three versions), of folder B, and of A on another host, an hour
    or so apart; the repository, A, B and the manifests by name."""
    a, b = tmp_path / "a", tmp_path / "b"
    write(b / "b.txt", "b")
    engine = sv.Engine(local_repo)
    made = {}
    for name, src, host, offset, text in [
        ("a1", a, HERE, 0, "v1"),
        ("a2", a, HERE, 60, "v2"),
        ("b1", b, HERE, 90, None),
        ("other", a, "elsewhere", 120, "v-other"),
        ("a3", a, HERE, 180, "v3"),
    ]:
        if text is not None:
            write(a / "f.txt", text)
        made[name] = engine.backup([src], hostname=host, now=T0 + timedelta(minutes=offset))
    return local_repo, a, b, made


def test_at_without_a_policy_restores_this_hosts_latest_at_or_before(
    history: tuple[sv.Repository, Path, Path, dict[str, sv.Manifest]], tmp_path: Path
) -> None:
    repo, a, _, made = history
    restorer = sv.Restorer(repo)
    res = restorer.restore(None, tmp_path / "out", at=T0 + timedelta(minutes=150), paths=[a])
    # "other" (a later snapshot of A) is another host's, b1 holds other paths.
    assert res.snapshot_id == made["a2"].id
    assert (tmp_path / "out" / str(a).lstrip("/") / "f.txt").read_text() == "v2"

    def pick(**kw: object) -> str:
        return restorer.resolve(None, policy=None, **kw).id  # type: ignore[arg-type]

    assert pick(at=T0 + timedelta(minutes=150)) == made["b1"].id  # any paths of this host
    assert pick(at=T0 + timedelta(minutes=150), hostname="elsewhere") == made["other"].id
    assert pick(at=T0 + timedelta(minutes=60), paths=[a]) == made["a2"].id  # "at or before": at itself
    assert pick(at=T0 + timedelta(minutes=60) - timedelta(microseconds=1), paths=[a]) == made["a1"].id
    # The same instant written in another zone picks the same snapshot.
    tokyo = (T0 + timedelta(minutes=60)).astimezone(timezone(timedelta(hours=9)))
    assert pick(at=tokyo, paths=[str(a) + "/"]) == made["a2"].id
    assert pick(at=T0 + timedelta(days=1), paths=[a]) == made["a3"].id
    # With a policy, at= keeps its meaning (the policy made none of these).
    with pytest.raises(sv.SnapshotNotFound, match="policy 'nightly'"):
        restorer.resolve(None, policy="nightly", at=T0 + timedelta(days=1))


def test_at_refusals_write_nothing(
    history: tuple[sv.Repository, Path, Path, dict[str, sv.Manifest]], tmp_path: Path
) -> None:
    repo, a, _, made = history
    restorer = sv.Restorer(repo)
    out = tmp_path / "out"
    with pytest.raises(sv.SnapshotNotFound, match=f"of host '{HERE}' of paths {a} at or before"):
        restorer.restore(None, out, at=T0 - timedelta(seconds=1), paths=[a])
    with pytest.raises(sv.ConfigError, match="timezone-aware"):
        restorer.restore(None, out, at=datetime(2026, 3, 1, 12, 0))  # naive: which zone?
    with pytest.raises(sv.ConfigError):
        restorer.restore(made["a1"].id, out, at=T0 + timedelta(hours=1))
    with pytest.raises(sv.ConfigError):
        restorer.restore(made["a1"].id, out, hostname=HERE)
    with pytest.raises(sv.ConfigError):
        restorer.restore(None, out, paths=[a])  # a filter alone is no point in time
    with pytest.raises(sv.SnapshotNotFound):
        restorer.resolve(None, policy=None, at=T0 + timedelta(days=1), paths=[a / "f.txt"])
    assert not out.exists()


def test_point_in_time_job(history: tuple[sv.Repository, Path, Path, dict[str, sv.Manifest]], tmp_path: Path) -> None:
    repo, a, _, made = history
    job = sv.Restorer(repo).submit(None, tmp_path / "out", at=T0 + timedelta(minutes=61), paths=[a])
    assert job.restore_type == "point-in-time"
    assert job.result(30).snapshot_id == made["a2"].id


# -- the command line ----------------------------------------------------------------------------


def _local(*args: int) -> datetime:
    """A wall-clock time of this machine's zone, as an aware datetime (the offset of that date)."""
    return datetime(*args).astimezone()  # type: ignore[arg-type]


@pytest.fixture
def cli_history(
    local_repo: sv.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Cli, Path, dict[str, sv.Manifest]]:
    """A policy's snapshots and a plain one around the end of 1 March, local time."""
    src = tmp_path / "src"
    engine = sv.Engine(local_repo)
    policy = sv.Policy(name="nightly", sources=[str(src)])
    made = {}
    for name, when, by_policy in [
        ("p1", _local(2026, 3, 1, 11, 0), True),
        ("p2", _local(2026, 3, 1, 23, 0), True),
        ("plain", _local(2026, 3, 1, 23, 30), False),
        ("p3", _local(2026, 3, 2, 0, 30), True),
    ]:
        write(src / "f.txt", name)
        if by_policy:
            made[name] = engine.run_policy(policy, hostname="h1", now=when)
        else:
            made[name] = engine.backup([src], hostname="h2", now=when)
    return Cli(local_repo.url, monkeypatch, capsys), src, made


def _restored(cli: Cli, target: Path, *args: str) -> str:
    code, out, err = cli("restore", *args, "--target", str(target), "--json")
    assert code == ExitCode.OK, err
    return str(json.loads(out)["snapshot_id"])


def test_restore_at_on_the_command_line(cli_history: tuple[Cli, Path, dict[str, sv.Manifest]], tmp_path: Path) -> None:
    cli, src, made = cli_history
    ids = {k: m.id for k, m in made.items()}
    noon = made["p1"].time + timedelta(hours=1)
    # SNAPSHOT left out: the newest the filters select at or before --at.
    assert _restored(cli, tmp_path / "o1", "--policy", "nightly", "--at", noon.isoformat()) == ids["p1"]
    assert (tmp_path / "o1" / str(src).lstrip("/") / "f.txt").read_text() == "p1"
    # The same instant in UTC with Z, and 'latest' said out loud.
    z = noon.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _restored(cli, tmp_path / "o2", "latest", "--policy", "nightly", "--at", z) == ids["p1"]
    # A date is the end of that day, local time: 23:30 is in, 00:30 the next day is not.
    assert _restored(cli, tmp_path / "o3", "--at", "2026-03-01") == ids["plain"]
    assert _restored(cli, tmp_path / "o4", "--at", "2026-03-01", "--policy", "nightly") == ids["p2"]
    assert _restored(cli, tmp_path / "o5", "--at", "2026-03-01", "--host", "h2", "--path", str(src)) == ids["plain"]
    # A time without an offset is local time.
    assert _restored(cli, tmp_path / "o6", "--at", "2026-03-02T00:30") == ids["p3"]
    assert _restored(cli, tmp_path / "o7", "--at", "2026-03-02T00:29:59") == ids["plain"]
    # Existing invocations are unchanged.
    assert _restored(cli, tmp_path / "o8", "latest") == ids["p3"]
    assert _restored(cli, tmp_path / "o9", ids["p1"][:8]) == ids["p1"]


def test_restore_at_refusals_on_the_command_line(
    cli_history: tuple[Cli, Path, dict[str, sv.Manifest]], tmp_path: Path
) -> None:
    cli, _, made = cli_history
    out = tmp_path / "out"
    line = one_line_error(cli("restore", "--at", "2026-02-28", "--target", str(out)))
    assert "no snapshot" in line
    assert "at or before 2026-02-28T23:59:59" in line
    # An ID names one snapshot: there is nothing for --at to choose.
    assert cli("restore", made["p1"].id, "--at", "2026-03-01", "--target", str(out))[0] == ExitCode.USAGE
    assert cli("restore", "--at", "yesterday", "--target", str(out))[0] == ExitCode.USAGE
    assert cli("restore", "--target", str(out))[0] == ExitCode.USAGE  # SNAPSHOT is needed without --at
    assert not out.exists()
