"""Policies: list, get, create and replace with the Policy schema, delete; retention preview; stats."""

from __future__ import annotations

import pytest

import snapvault as sv
from tests.service.conftest import World

pytestmark = pytest.mark.anyio


async def test_policies_are_created_replaced_read_and_removed(world: World) -> None:
    c, admin, viewer = world.client, world.auth("admin"), world.auth("viewer")
    body = {
        "name": "photos",
        "sources": [str(world.source / "sub")],
        "exclude": ["*.tmp"],
        "backup_type": "full",
        "schedule": "0 2 * * *",
        "timezone": "Europe/Berlin",
        "retention": {"strategy": "gfs", "daily": 7, "weekly": 4, "timezone": "Europe/Berlin"},
        "verify": "sample:10%",
        "tags": ["pics"],
    }
    created = await c.put("/policies/photos", json=body, headers=admin)
    assert created.status_code == 201, created.text
    stored = world.repo.load_policy("photos")
    assert stored == sv.Policy.model_validate(body)
    assert created.json()["retention"]["daily"] == 7
    replaced = await c.put("/policies/photos", json={**body, "backup_type": "incremental"}, headers=admin)
    assert replaced.status_code == 200
    assert world.repo.load_policy("photos").backup_type == "incremental"
    got = await c.get("/policies/photos", headers=viewer)
    assert got.json() == replaced.json()
    listed = (await c.get("/policies", headers=viewer)).json()
    assert [p["name"] for p in listed["policies"]] == ["docs", "photos"]
    assert listed["broken"] == []
    removed = await c.delete("/policies/photos", headers=admin)
    assert removed.json() == {"removed": "photos"}
    assert "photos" not in world.repo.policies()
    for r in (await c.get("/policies/photos", headers=viewer), await c.delete("/policies/photos", headers=admin)):
        assert r.status_code == 404
        assert r.json()["type"] == "urn:snapvault:problem:policy-not-found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "p", "sources": []}, "sources"),
        ({"name": "p", "sources": ["/x"], "schedule": "61 * * * *"}, "schedule"),
        ({"name": "p", "sources": ["/x"], "timezone": "Mars/Base"}, "timezone"),
        ({"name": "p", "sources": ["/x"], "verify": "sometimes"}, "verify"),
        ({"name": "p", "sources": ["/x"], "retention": {"strategy": "nope"}}, "retention"),
        ({"name": "p", "sources": ["/x"], "unknown": 1}, "unknown"),
        ({"sources": ["/x"]}, "name"),
    ],
)
async def test_an_invalid_policy_is_a_422_problem_naming_the_field(
    world: World, body: dict[str, object], field: str
) -> None:
    r = await world.client.put("/policies/p", json=body, headers=world.auth("admin"))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "urn:snapvault:problem:invalid-request"
    assert field in problem["detail"]
    assert "p" not in world.repo.policies()


async def test_a_policy_whose_name_or_sources_are_not_allowed_is_refused(world: World) -> None:
    admin = world.auth("admin")
    r = await world.client.put("/policies/a", json={"name": "b", "sources": [str(world.source)]}, headers=admin)
    assert r.status_code == 422
    assert r.json()["type"] == "urn:snapvault:problem:invalid-value"
    # backup_roots is the folder "data": /etc, a relative path and a URL are outside it.
    for source in ("/etc", "relative", "memory://x", f"{world.source}/../../../etc"):
        r = await world.client.put("/policies/a", json={"name": "a", "sources": [source]}, headers=admin)
        assert r.status_code == 403, source
        assert r.json()["type"] == "urn:snapvault:problem:source-refused"
    assert world.repo.policies().keys() == {"docs"}


async def test_the_retention_preview_removes_nothing(world: World) -> None:
    r = await world.client.get("/retention/preview", headers=world.auth("viewer"))
    assert r.json() == [
        {
            "policy": "docs",
            "keep": [world.second.id],
            "remove": [world.first.id],
            "reasons": {world.second.id: ["last 1"], world.first.id: ["not kept by any rule"]},
        }
    ]
    assert len(world.repo.snapshots()) == 2
    one = await world.client.get("/retention/preview?policy=docs", headers=world.auth("viewer"))
    assert one.json() == r.json()
    missing = await world.client.get("/retention/preview?policy=nope", headers=world.auth("viewer"))
    assert missing.status_code == 404


async def test_stats_count_snapshots_and_runs(world: World) -> None:
    s = (await world.client.get("/stats", headers=world.auth("viewer"))).json()
    assert s["snapshots"] == 2
    assert s["jobs_active"] == 0
    docs = s["policies"]["docs"]
    assert docs["runs"] == 2
    assert docs["success_rate"] == 1.0
    assert docs["snapshots"] == 2
    assert docs["last_failure"] is None
    assert docs["storage_used"] == world.first.stats.bytes_stored + world.second.stats.bytes_stored
