"""Snapshots: filtered lists, manifests, directory entries, diffs, ranged downloads, deletion."""

from __future__ import annotations

import pytest
from examples.service.problems import Problem
from examples.service.routes_snapshots import parse_range

from tests.service.conftest import BIG, World

pytestmark = pytest.mark.anyio


async def test_snapshots_are_listed_oldest_first_and_filtered(world: World) -> None:
    c, h = world.client, world.auth("viewer")
    listed = (await c.get("/snapshots", headers=h)).json()
    assert [s["id"] for s in listed] == [world.first.id, world.second.id]
    assert listed[0]["short_id"] == world.first.id[:8]
    assert listed[0]["stats"]["total_files"] == 3
    assert [s["id"] for s in (await c.get("/snapshots?policy=docs", headers=h)).json()] == [
        world.first.id,
        world.second.id,
    ]
    assert (await c.get("/snapshots?policy=other", headers=h)).json() == []
    assert (await c.get("/snapshots?host=nowhere", headers=h)).json() == []
    host = world.first.hostname
    assert len((await c.get(f"/snapshots?host=nowhere&host={host}", headers=h)).json()) == 2
    assert len((await c.get(f"/snapshots?path={world.source}", headers=h)).json()) == 2
    assert (await c.get("/snapshots?path=/elsewhere", headers=h)).json() == []
    world.repo.tag(world.first.id, add=["keep", "q1"])
    tagged = (await c.get("/snapshots?tag=keep,q1", headers=h)).json()
    assert [s["tags"] for s in tagged] == [["keep", "q1"]]
    assert (await c.get("/snapshots?tag=keep,q2", headers=h)).json() == []
    bad = await c.get("/snapshots?path=relative", headers=h)
    assert bad.status_code == 422
    assert bad.json()["type"] == "urn:snapvault:problem:invalid-value"


async def test_one_snapshot_by_id_prefix_latest_and_policy_refs(world: World) -> None:
    c, h = world.client, world.auth("viewer")
    for ref, expected in (
        (world.first.id, world.first.id),
        (world.first.id[:6], world.first.id),
        ("latest", world.second.id),
        ("latest@docs", world.second.id),
        (f"docs@{world.first.time.isoformat()}", world.first.id),
    ):
        r = await c.get(f"/snapshots/{ref}", headers=h)
        assert r.status_code == 200, (ref, r.text)
        assert r.json()["id"] == expected
    missing = await c.get("/snapshots/ffffffffff", headers=h)
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:snapvault:problem:snapshot-not-found"
    assert (await c.get("/snapshots/latest@nobody", headers=h)).status_code == 404
    assert (await c.get("/snapshots/a%2Fb", headers=h)).status_code in (404, 422)


async def test_files_of_a_directory_and_a_file(world: World) -> None:
    c, h = world.client, world.auth("viewer")
    r = await c.get(f"/snapshots/latest/files?path={world.source}", headers=h)
    entries = {e["name"]: e for e in r.json()}
    assert sorted(entries) == ["a.txt", "big.bin", "c.txt", "sub"]
    assert entries["big.bin"]["size"] == len(BIG)
    assert entries["big.bin"]["path"] == f"{world.source}/big.bin"
    assert entries["sub"]["type"] == "directory"
    old = await c.get(f"/snapshots/{world.first.id}/files?path={world.source}", headers=h)
    assert sorted(e["name"] for e in old.json()) == ["a.txt", "big.bin", "sub"]
    one = (await c.get(f"/snapshots/latest/files?path={world.source}/sub/b.md", headers=h)).json()
    assert [(e["name"], e["type"], e["size"]) for e in one] == [("b.md", "file", 8)]
    top = (await c.get("/snapshots/latest/files", headers=h)).json()
    assert [e["path"] for e in top] == ["/" + str(world.source).strip("/").split("/")[0]]
    gone = await c.get(f"/snapshots/latest/files?path={world.source}/nope", headers=h)
    assert gone.status_code == 404


async def test_a_diff_names_each_change(world: World) -> None:
    r = await world.client.get(f"/snapshots/{world.first.id[:8]}/diff/latest", headers=world.auth("viewer"))
    changes = {(ch["path"].removeprefix(str(world.source)), ch["kind"]) for ch in r.json()["changes"]}
    assert {("/a.txt", "modified"), ("/c.txt", "added")} <= changes
    assert r.json()["summary"]["files_added"] == 1


async def test_a_download_streams_the_file_and_a_range_returns_exactly_those_bytes(world: World) -> None:
    c, h = world.client, world.auth("viewer")
    url = f"/snapshots/latest/download?path={world.source}/big.bin"
    whole = await c.get(url, headers=h)
    assert whole.status_code == 200
    assert whole.content == BIG
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-disposition"] == "attachment; filename*=UTF-8''big.bin"
    etag = whole.headers["etag"]
    for header, lo, hi in (
        ("bytes=100-199", 100, 200),
        ("bytes=0-0", 0, 1),
        ("bytes=650000-", 650000, len(BIG)),
        ("bytes=-10", len(BIG) - 10, len(BIG)),
        ("bytes=699990-9999999", 699990, len(BIG)),
        ("bytes=-99999999", 0, len(BIG)),
    ):
        r = await c.get(url, headers={**h, "Range": header})
        assert r.status_code == 206, header
        assert r.content == BIG[lo:hi], header
        assert r.headers["content-range"] == f"bytes {lo}-{hi - 1}/{len(BIG)}"
        assert int(r.headers["content-length"]) == hi - lo
    # Several ranges, another unit, a reversed range: ignored, the whole file comes.
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=9-3"):
        r = await c.get(url, headers={**h, "Range": header})
        assert (r.status_code, r.content == BIG) == (200, True), header
    beyond = await c.get(url, headers={**h, "Range": f"bytes={len(BIG)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(BIG)}"
    assert beyond.json()["type"] == "urn:snapvault:problem:range-not-satisfiable"
    # If-Range: the same ETag honours the range, another sends the whole file.
    same = await c.get(url, headers={**h, "Range": "bytes=1-2", "If-Range": etag})
    assert (same.status_code, same.content) == (206, BIG[1:3])
    other = await c.get(url, headers={**h, "Range": "bytes=1-2", "If-Range": '"0000"'})
    assert (other.status_code, other.content == BIG) == (200, True)
    old = await c.get(f"/snapshots/{world.first.id}/download?path={world.source}/a.txt", headers=h)
    assert old.content == b"alpha\n"


async def test_a_download_of_a_directory_or_a_missing_path_is_refused(world: World) -> None:
    c, h = world.client, world.auth("viewer")
    r = await c.get(f"/snapshots/latest/download?path={world.source}/sub", headers=h)
    assert r.status_code == 409
    assert r.json()["type"] == "urn:snapvault:problem:not-a-file"
    r = await c.get(f"/snapshots/latest/download?path={world.source}/nope", headers=h)
    assert r.status_code == 404
    r = await c.get("/snapshots/latest/download?path=relative/x", headers=h)
    assert r.status_code == 422


async def test_an_admin_forgets_a_snapshot(world: World) -> None:
    c = world.client
    r = await c.delete(f"/snapshots/{world.first.id[:8]}", headers=world.auth("admin"))
    assert r.status_code == 200
    assert r.json() == {"removed": [world.first.id]}
    assert [m.id for m in world.repo.snapshots()] == [world.second.id]
    assert (await c.get(f"/snapshots/{world.first.id}", headers=world.auth("viewer"))).status_code == 404
    assert world.repo.check().ok


def test_parse_range_follows_rfc_9110_for_one_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 5)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=8-", 10) == (8, 10)
    assert parse_range("bytes=-", 10) is None
    assert parse_range("bytes=1-2, 4-5", 10) is None
    with pytest.raises(Problem) as e:
        parse_range("bytes=10-", 10)
    assert e.value.status == 416
    with pytest.raises(Problem):
        parse_range("bytes=-0", 10)
