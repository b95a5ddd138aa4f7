"""Jobs: a backup followed through its event stream, restores (full, selective, point in time)
confined to their roots, a cancelled job, and the job list."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

import snapvault as sv
from tests.conftest import write
from tests.service.conftest import BIG, World, build_world, finish, tree_files, wait_done

pytestmark = pytest.mark.anyio


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a server-sent event stream."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


async def test_a_backup_job_is_followed_through_its_events_to_completion(world: World) -> None:
    write(world.source / "new.txt", "delta\n")
    r = await world.client.post("/jobs/backup", json={"policy": "docs"}, headers=world.auth("operator"))
    assert r.status_code == 202
    job = r.json()
    assert job["kind"] == "backup"
    assert job["policy"] == "docs"
    assert job["requested_by"] == "operator-1"
    stream = await world.client.get(f"/jobs/{job['id']}/events", headers=world.auth("viewer"))
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = parse_events(stream.text)
    kinds = [k for k, _ in events]
    assert kinds[0] == "started"
    assert kinds[-1] == "completed"
    assert set(kinds[1:-1]) <= {"progress"}
    done = events[-1][1]
    assert done["status"] == "completed"
    assert done["progress"]["files_done"] == done["progress"]["files_total"] == 5
    snapshot_id = done["result"]["snapshot_id"]
    # The stream's last word is what a poll says, and the snapshot exists with the new file.
    polled = (await world.client.get(f"/jobs/{job['id']}", headers=world.auth("viewer"))).json()
    assert polled["status"] == "completed"
    assert polled["result"]["snapshot_id"] == snapshot_id
    manifest = world.repo.resolve(snapshot_id)
    assert manifest.policy == "docs"
    assert manifest.stats.total_files == 5
    listed = (await world.client.get("/jobs", headers=world.auth("viewer"))).json()
    assert [j["id"] for j in listed] == [job["id"]]
    assert (await world.client.get("/jobs?kind=restore", headers=world.auth("viewer"))).json() == []


async def _run(world: World, body: dict[str, Any]) -> dict[str, Any]:
    r = await world.client.post("/jobs/restore", json=body, headers=world.auth("operator"))
    assert r.status_code == 202, r.text
    events = parse_events((await world.client.get(f"/jobs/{r.json()['id']}/events", headers=world.auth("viewer"))).text)
    assert events[-1][0] == "completed", events[-1]
    return events[-1][1]


async def test_full_selective_and_point_in_time_restores_write_what_the_snapshot_holds(world: World) -> None:
    src = str(world.source).lstrip("/")
    full = await _run(world, {"snapshot": "latest", "target_root": "restores", "target_path": "full"})
    assert full["restore_type"] == "full"
    assert full["snapshot"] == world.second.id
    assert full["target"] == "restores:full"
    assert full["result"]["ok"]
    assert tree_files(world.restores / "full" / src) == tree_files(world.source)

    selective = await _run(
        world, {"snapshot": world.second.id[:8], "include": ["*.txt"], "target_root": "restores", "target_path": "sel"}
    )
    assert selective["restore_type"] == "selective"
    assert sorted(tree_files(world.restores / "sel" / src)) == ["a.txt", "c.txt"]

    # Between the two snapshots: the first one, with the old a.txt and without c.txt.
    at = (world.first.time + (world.second.time - world.first.time) / 2).isoformat()
    pit = await _run(world, {"policy": "docs", "at": at, "target_root": "restores", "target_path": "pit/x"})
    assert pit["restore_type"] == "point-in-time"
    assert pit["snapshot"] == world.first.id
    files = tree_files(world.restores / "pit" / "x" / src)
    assert files["a.txt"] == b"alpha\n"
    assert "c.txt" not in files
    assert files["big.bin"] == BIG


@pytest.mark.parametrize(
    "target_path",
    ["../escape", "a/../../escape", "/tmp/escape", "//etc", "a/..", "..", "~root/x", "a\\..\\b", "a\x00b"],
)
async def test_a_restore_target_that_could_leave_its_root_is_refused(world: World, target_path: str) -> None:
    body = {"snapshot": "latest", "target_root": "restores", "target_path": target_path}
    r = await world.client.post("/jobs/restore", json=body, headers=world.auth("admin"))
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:snapvault:problem:target-refused"
    assert world.app.state.service.jobs.recent(10) == []
    assert not (world.restores.parent / "escape").exists()


async def test_a_symlink_under_the_root_that_leads_out_and_an_unknown_root_are_refused(world: World) -> None:
    outside = world.restores.parent / "outside"
    outside.mkdir()
    os.symlink(outside, world.restores / "link")
    for root, path in (("restores", "link"), ("restores", "link/deeper"), ("elsewhere", "x"), ("", "x")):
        body = {"snapshot": "latest", "target_root": root, "target_path": path}
        r = await world.client.post("/jobs/restore", json=body, headers=world.auth("operator"))
        assert r.status_code in (403, 422), (root, path, r.text)
        assert r.json()["type"] in ("urn:snapvault:problem:target-refused", "urn:snapvault:problem:invalid-request")
    assert list(outside.iterdir()) == []


async def test_restore_requests_that_do_not_validate_or_name_nothing(world: World) -> None:
    h = world.auth("operator")
    base = {"target_root": "restores"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**base}, 422, "invalid-request"),  # no snapshot, policy or time
        ({**base, "snapshot": "latest", "policy": "docs"}, 422, "invalid-request"),
        ({**base, "at": "2026-01-01T00:00:00"}, 422, "invalid-request"),  # naive time
        ({**base, "snapshot": "latest", "bogus": 1}, 422, "invalid-request"),
        ({**base, "snapshot": "ffffffff"}, 404, "snapshot-not-found"),
        ({**base, "policy": "docs", "at": "2000-01-01T00:00:00Z"}, 404, "snapshot-not-found"),
    ]
    for body, status, slug in cases:
        r = await world.client.post("/jobs/restore", json=body, headers=h)
        assert r.status_code == status, (body, r.text)
        problem = r.json()
        assert problem["type"] == f"urn:snapvault:problem:{slug}"
        assert problem["status"] == status
        assert "Traceback" not in r.text
    r = await world.client.post("/jobs/backup", json={"policy": "nope"}, headers=h)
    assert r.status_code == 404
    assert r.json()["type"] == "urn:snapvault:problem:policy-not-found"
    r = await world.client.get("/jobs/0123", headers=h)
    assert r.status_code == 404
    assert r.json()["type"] == "urn:snapvault:problem:job-not-found"


async def test_a_cancelled_backup_ends_cancelled_and_writes_no_snapshot(tmp_path: Path) -> None:
    # A pre-hook this service allows holds the job long enough to be cancelled for sure.
    hook = "sleep 0.5"
    w = build_world(tmp_path, allowed_hooks=[hashlib.sha256(hook.encode()).hexdigest()])
    try:
        slow = sv.Policy(name="slow", sources=[str(w.source)], pre_hooks=[hook])
        r = await w.client.put("/policies/slow", json=json.loads(slow.to_json()), headers=w.auth("admin"))
        assert r.status_code == 201, r.text
        before = {m.id for m in w.repo.snapshots()}
        r = await w.client.post("/jobs/backup", json={"policy": "slow"}, headers=w.auth("operator"))
        job_id = r.json()["id"]
        r = await w.client.post(f"/jobs/{job_id}/cancel", headers=w.auth("operator"))
        assert r.status_code == 202
        events = parse_events((await w.client.get(f"/jobs/{job_id}/events", headers=w.auth("viewer"))).text)
        assert events[-1][0] == "cancelled"
        assert events[-1][1]["status"] == "cancelled"
        assert events[-1][1]["result"] is None
        assert {m.id for m in w.repo.snapshots()} == before
        again = await w.client.post(f"/jobs/{job_id}/cancel", headers=w.auth("operator"))
        assert again.status_code == 409
        assert again.json()["type"] == "urn:snapvault:problem:job-finished"
        assert w.repo.check().ok
        stats = (await w.client.get("/stats", headers=w.auth("viewer"))).json()
        assert stats["policies"]["slow"]["runs"] == 1
        assert stats["policies"]["slow"]["snapshots"] == 0
    finally:
        finish(w)


async def test_a_policy_with_a_hook_the_service_does_not_allow_fails_its_job(world: World) -> None:
    bad = sv.Policy(name="hooked", sources=[str(world.source)], pre_hooks=["true"])
    r = await world.client.put("/policies/hooked", json=json.loads(bad.to_json()), headers=world.auth("admin"))
    assert r.status_code == 201
    r = await world.client.post("/jobs/backup", json={"policy": "hooked"}, headers=world.auth("operator"))
    events = parse_events((await world.client.get(f"/jobs/{r.json()['id']}/events", headers=world.auth("viewer"))).text)
    assert events[-1][0] == "failed"
    assert events[-1][1]["error"]["type"] == "HookError"


async def test_jobs_beyond_the_limit_are_refused_with_503(tmp_path: Path) -> None:
    hook = "sleep 0.3"
    w = build_world(tmp_path, allowed_hooks=[hashlib.sha256(hook.encode()).hexdigest()], max_active=1)
    try:
        slow = sv.Policy(name="slow", sources=[str(w.source)], pre_hooks=[hook])
        await w.client.put("/policies/slow", json=json.loads(slow.to_json()), headers=w.auth("admin"))
        first = await w.client.post("/jobs/backup", json={"policy": "slow"}, headers=w.auth("operator"))
        assert first.status_code == 202
        second = await w.client.post("/jobs/backup", json={"policy": "docs"}, headers=w.auth("operator"))
        assert second.status_code == 503
        assert second.json()["type"] == "urn:snapvault:problem:too-many-jobs"
        assert second.headers["retry-after"] == "5"
        wait_done(w, first.json()["id"])
        third = await w.client.post("/jobs/backup", json={"policy": "docs"}, headers=w.auth("operator"))
        assert third.status_code == 202
    finally:
        finish(w)


async def test_jobs_beyond_max_running_wait_in_a_queue_and_a_queued_one_can_be_cancelled(tmp_path: Path) -> None:
    hook = "sleep 0.3"
    w = build_world(tmp_path, allowed_hooks=[hashlib.sha256(hook.encode()).hexdigest()], max_running=1)
    try:
        slow = sv.Policy(name="slow", sources=[str(w.source)], pre_hooks=[hook])
        await w.client.put("/policies/slow", json=json.loads(slow.to_json()), headers=w.auth("admin"))
        op, viewer = w.auth("operator"), w.auth("viewer")
        first = (await w.client.post("/jobs/backup", json={"policy": "slow"}, headers=op)).json()
        second = (await w.client.post("/jobs/backup", json={"policy": "docs"}, headers=op)).json()
        third = (await w.client.post("/jobs/backup", json={"policy": "docs"}, headers=op)).json()
        assert first["status"] == "running"
        assert (second["status"], second["started"], third["status"]) == ("pending", None, "pending")
        r = await w.client.post(f"/jobs/{third['id']}/cancel", headers=op)
        assert (r.status_code, r.json()["status"]) == (202, "cancelled")
        assert r.json()["ended"] is not None
        # The queued job's stream says so, then follows it once it runs.
        events = parse_events((await w.client.get(f"/jobs/{second['id']}/events", headers=viewer)).text)
        assert [k for k, _ in events][:2] == ["queued", "started"]
        assert events[-1][0] == "completed"
        first_done = (await w.client.get(f"/jobs/{first['id']}", headers=viewer)).json()
        assert first_done["status"] == "completed"
        assert events[1][1]["started"] >= first_done["ended"]  # it waited for the first
        cancelled = parse_events((await w.client.get(f"/jobs/{third['id']}/events", headers=viewer)).text)
        assert [k for k, _ in cancelled] == ["cancelled"]
        assert (await w.client.post(f"/jobs/{third['id']}/cancel", headers=op)).status_code == 409
        assert len(w.repo.snapshots()) == 4  # two before, and the first and second jobs'
    finally:
        finish(w)
