"""Selecting snapshots (filters, groups, --latest), ad-hoc forget and re-tagging, through the library.

Filters and groups are checked on manifest values; forget and tag on real repositories, where
what matters is which manifests exist afterwards and that nothing is removed when a call fails.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.policy.selection import (
    SnapshotFilter,
    SnapshotGroup,
    adhoc_strategy,
    find_snapshot,
    latest_per_group,
    parse_group_by,
    select,
)
from tests.conftest import PASSWORD, write

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = T0 + timedelta(days=30)


def _m(sid: str, host: str, paths: list[str], tags: list[str], day: int, policy: str | None = None) -> sv.Manifest:
    return sv.Manifest(
        id=sid, time=T0 + timedelta(days=day), hostname=host, paths=paths, tags=tags, tree="00", policy=policy
    )


SNAPS = [
    _m("a1", "web", ["/etc", "/srv"], ["daily"], 0),
    _m("a2", "web", ["/srv", "/etc"], ["daily", "db"], 1),
    _m("b1", "db", ["/var/lib"], ["db"], 2, policy="nightly"),
    _m("b2", "db", ["/var/lib"], [], 3, policy="nightly"),
    _m("c1", "web", ["/etc"], [], 4),
]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (SnapshotFilter(), ["a1", "a2", "b1", "b2", "c1"]),
        (SnapshotFilter(hosts=["db"]), ["b1", "b2"]),
        (SnapshotFilter(hosts=["db", "web"]), ["a1", "a2", "b1", "b2", "c1"]),
        # A group needs every tag; several groups: any of them.
        (SnapshotFilter(tags=["daily,db"]), ["a2"]),
        (SnapshotFilter(tags=["daily", "db"]), ["a1", "a2", "b1"]),
        # Every path given must be held; compared normalised.
        (SnapshotFilter(paths=["/etc/"]), ["a1", "a2", "c1"]),
        (SnapshotFilter(paths=["/etc", "/srv"]), ["a1", "a2"]),
        (SnapshotFilter(policy="nightly"), ["b1", "b2"]),
        (SnapshotFilter(hosts=["web"], tags=["db"]), ["a2"]),
    ],
)
def test_filters_follow_restics_rules(where: SnapshotFilter, expected: list[str]) -> None:
    assert [m.id for m in select(SNAPS, where)] == expected


def test_a_relative_path_filter_is_refused() -> None:
    with pytest.raises(sv.ConfigError, match="absolute"):
        SnapshotFilter(paths=["etc"])


def test_latest_is_per_host_and_paths_group_unless_grouped_otherwise() -> None:
    # /etc /srv in either order is one group; web /etc alone is another.
    assert [m.id for m in latest_per_group(SNAPS, 1)] == ["a2", "b2", "c1"]
    assert [m.id for m in latest_per_group(SNAPS, 1, group_by=("host",))] == ["b2", "c1"]
    assert [m.id for m in latest_per_group(SNAPS, 2, group_by=())] == ["b2", "c1"]
    with pytest.raises(sv.ConfigError):
        latest_per_group(SNAPS, 0)
    with pytest.raises(sv.ConfigError, match="'hostname'"):
        parse_group_by("hostname,paths")


def test_no_rule_is_no_strategy_and_rules_combine_as_a_union() -> None:
    assert adhoc_strategy() is None
    assert adhoc_strategy(keep_last=0) is None  # 0 means "no such rule", as in restic
    both = adhoc_strategy(keep_last=1, keep_daily=2, keep_tags=["db"])
    decision = both.apply(SNAPS, NOW) if both else None
    assert decision is not None
    assert decision.reasons["c1"] == ("last 1", "daily 2026-03-05")
    assert decision.reasons["b1"] == ("tag:db",)
    with pytest.raises(sv.ConfigError):
        adhoc_strategy(keep_weekly=-1)


@pytest.fixture
def made(tmp_path: Path, memory_repo: sv.Repository) -> tuple[sv.Repository, dict[str, sv.Manifest]]:
    """A repository with snapshots of two hosts (one of them made by a policy), a day apart."""
    src = write(tmp_path / "src" / "f.txt", "data").parent
    repo = memory_repo
    engine = sv.Engine(repo)
    out = {}
    for day, (name, host) in enumerate([("w1", "web"), ("w2", "web"), ("d1", "db"), ("w3", "web")]):
        out[name] = engine.backup([str(src)], hostname=host, tags=[name], now=T0 + timedelta(days=day))
    policy = sv.Policy(name="nightly", sources=[str(src)])
    out["p1"] = engine.run_policy(policy, hostname="db", now=T0 + timedelta(days=5))
    return repo, out


def _ids(repo: sv.Repository) -> set[str]:
    return {m.id for m in repo.snapshots()}


def test_adhoc_rules_apply_per_group_to_every_snapshot_and_a_dry_run_removes_nothing(
    made: tuple[sv.Repository, dict[str, sv.Manifest]],
) -> None:
    repo, s = made
    dry = repo.forget(keep_last=1, now=NOW, dry_run=True)
    assert [(r.group.host, r.decision.keep, r.decision.remove, r.removed) for r in dry] == [
        ("db", (s["p1"].id,), (s["d1"].id,), []),  # the policy-made one counts like any other
        ("web", (s["w3"].id,), (s["w2"].id, s["w1"].id), []),
    ]
    assert dry[1].decision.reasons[s["w1"].id] == ("not kept by any rule",)
    assert _ids(repo) == {m.id for m in s.values()}
    done = repo.forget(keep_last=1, hosts=["web"], now=NOW)
    assert [r.removed for r in done] == [[s["w2"].id, s["w1"].id]]
    assert _ids(repo) == {s["w3"].id, s["d1"].id, s["p1"].id}


def test_forget_by_id_prefix_and_latest_of_a_filter(made: tuple[sv.Repository, dict[str, sv.Manifest]]) -> None:
    repo, s = made
    [r] = repo.forget([s["w1"].id[:8], "latest"], hosts=["web"], group_by="host", now=NOW)
    assert r.group == SnapshotGroup(host="web")
    assert r.removed == [s["w3"].id, s["w1"].id]
    assert r.decision.reasons[s["w1"].id] == ("named by ID",)
    assert _ids(repo) == {s["w2"].id, s["d1"].id, s["p1"].id}
    assert find_snapshot(repo, "latest", SnapshotFilter(hosts=["web"])).id == s["w2"].id


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((), {}, sv.ConfigError),  # neither IDs nor rules: restic refuses too
        (["latest"], {"keep_last": 1}, sv.ConfigError),
        (["ffffffff"], {}, sv.SnapshotNotFound),
    ],
)
def test_forget_refusals_remove_nothing(
    made: tuple[sv.Repository, dict[str, sv.Manifest]], args: list[str], kwargs: dict[str, int], error: type
) -> None:
    repo, s = made
    with pytest.raises(error):
        repo.forget(args or None, now=NOW, **kwargs)
    assert len(_ids(repo)) == len(s)


def test_append_only_refuses_forget_and_tag_before_anything_changes(
    made: tuple[sv.Repository, dict[str, sv.Manifest]],
) -> None:
    repo, s = made
    ro = sv.Repository.open(repo.url, PASSWORD, append_only=True)
    with pytest.raises(sv.AppendOnlyError):
        ro.forget(keep_last=1, now=NOW)
    with pytest.raises(sv.AppendOnlyError):
        ro.tag(s["w1"].id, add=["x"])
    assert len(ro.forget(keep_last=1, now=NOW, dry_run=True)) == 2
    assert _ids(repo) == {m.id for m in s.values()}


def test_tag_writes_a_new_manifest_that_remembers_the_first_id(
    made: tuple[sv.Repository, dict[str, sv.Manifest]],
) -> None:
    repo, s = made
    old = s["p1"]
    first = repo.tag(old.id[:6], add=["keep", "me"], remove=["nope"])
    assert first.id != old.id
    assert first.tags == ["keep", "me"]
    second = repo.tag(first, remove=["me"], add=["archive"])
    assert second.tags == ["keep", "archive"]
    assert _ids(repo) == {m.id for m in s.values()} - {old.id} | {second.id}
    stored = repo.load_manifest(second.id)
    assert stored.model_extra == {"retagged_from": old.id}
    # Everything but the tags is as it was: a policy still finds its latest snapshot.
    same = ("time", "hostname", "paths", "tree", "policy", "backup_type", "parent", "stats")
    assert all(getattr(stored, f) == getattr(old, f) for f in same)
    assert repo.tag(second, set=["keep", "archive"]) == second  # unchanged: nothing written
    assert repo.tag(second, set=[]).tags == []
    with pytest.raises(sv.ConfigError):
        repo.tag(s["w1"], set=["a"], add=["b"])
    with pytest.raises(sv.ConfigError):
        repo.tag(s["w1"])
    assert len(_ids(repo)) == len(s)
