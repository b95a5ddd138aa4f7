"""DR: the plans stored in the served repository, their status and report, and a failover."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.service.conftest import World
from tests.service.test_jobs import parse_events

pytestmark = pytest.mark.anyio


def _plan(world: World) -> sv.DRPlan:
    """A plan whose primary is the served repository and whose replica holds its snapshots."""
    replica_url = str(world.restores.parent / "replica")
    sv.Repository.init(replica_url, PASSWORD, kdf=FAST_KDF, copy_params_from=world.repo)
    plan = sv.DRPlan(
        name="site",
        primary=sv.Site(name="main", region="here", url=world.settings.repository.url, password_env="DR_PASSWORD"),
        replicas=[sv.Site(name="spare", region="there", url=replica_url, password_env="DR_PASSWORD")],
        rpo="6h",
        rto="1h",
        policies=["docs"],
    )
    now = datetime.now(UTC)
    plan.save(world.repo, now=now)
    result = plan.bind(env={"DR_PASSWORD": PASSWORD}).replicate(now=now)
    assert result.ok
    return plan


async def test_plans_status_and_report_are_read_by_a_viewer(world: World) -> None:
    _plan(world)
    c, h = world.client, world.auth("viewer")
    plans = (await c.get("/dr/plans", headers=h)).json()
    assert [(p["name"], p["primary"]["name"], [r["name"] for r in p["replicas"]]) for p in plans] == [
        ("site", "main", ["spare"])
    ]
    assert PASSWORD not in json.dumps(plans)  # references only
    status = (await c.get("/dr/plans/site/status", headers=h)).json()
    assert status["plan"] == "site"
    assert status["primary"] == "main"
    assert status["ok"], status["violations"]
    assert {s["site"]: s["reachable"] for s in status["sites"]} == {"main": True, "spare": True}
    report = await c.get("/dr/plans/site/report", headers=h)
    assert report.headers["content-type"] == "application/json"
    assert report.json()["plan"] == "site"
    md = await c.get("/dr/plans/site/report?format=markdown", headers=h)
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("# Disaster-recovery report: site")
    html = await c.get("/dr/plans/site/report?format=html", headers=h)
    assert html.headers["content-type"].startswith("text/html")
    assert "<svg" in html.text
    assert "default-src 'none'" in html.headers["content-security-policy"]
    for url in ("/dr/plans/nope/status", "/dr/plans/nope/report"):
        missing = await c.get(url, headers=h)
        assert missing.status_code == 404
        assert missing.json()["type"] == "urn:snapvault:problem:plan-not-found"
    bad = await c.get("/dr/plans/site/report?format=pdf", headers=h)
    assert bad.status_code == 422


async def test_an_admin_fails_over_and_backups_here_are_then_refused(world: World) -> None:
    _plan(world)
    c = world.client
    refused = await c.post(
        "/dr/plans/site/failover", json={"to": "elsewhere", "reason": "x"}, headers=world.auth("admin")
    )
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:snapvault:problem:invalid-value"
    assert "no site 'elsewhere'" in refused.json()["detail"]
    r = await c.post(
        "/dr/plans/site/failover", json={"to": "spare", "reason": "drill day"}, headers=world.auth("admin")
    )
    assert r.status_code == 200, r.text
    record = r.json()
    assert (record["primary"], record["previous"], record["kind"]) == ("spare", "main", "failover")
    assert record["reason"] == "drill day (by admin-1)"
    status = (await c.get("/dr/plans/site/status", headers=world.auth("viewer"))).json()
    assert status["primary"] == "spare"
    # This repository is no longer the primary of the policy the plan covers.
    job = await c.post("/jobs/backup", json={"policy": "docs"}, headers=world.auth("operator"))
    assert job.status_code == 409
    assert job.json()["type"] == "urn:snapvault:problem:stale-primary"
    assert "'spare'" in job.json()["detail"]
    # A policy the plan does not cover still backs up here.
    other = {"name": "other", "sources": [str(world.source)]}
    assert (await c.put("/policies/other", json=other, headers=world.auth("admin"))).status_code == 201
    job = await c.post("/jobs/backup", json={"policy": "other"}, headers=world.auth("operator"))
    events = parse_events((await c.get(f"/jobs/{job.json()['id']}/events", headers=world.auth("viewer"))).text)
    assert events[-1][0] == "completed"


def test_library_submit_policy_refuses_a_stale_primary_as_run_policy_does(world: World) -> None:
    plan = _plan(world).bind(env={"DR_PASSWORD": PASSWORD})
    plan.failover(to="spare", reason="test", now=datetime.now(UTC))
    policy = world.repo.load_policy("docs")
    engine = sv.Engine(world.repo)
    with pytest.raises(sv.StalePrimaryError):
        engine.run_policy(policy)
    job = engine.submit_policy(policy)
    job.wait(60)
    assert isinstance(job.error, sv.StalePrimaryError), job.status
