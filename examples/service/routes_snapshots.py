"""Snapshots: list (with filters), one manifest, a directory's entries, a diff, a file download
(streamed, with HTTP Range), and deletion (admin).

Files are read through ``snapvault.SnapshotFileSystem`` over the service's open repository: a
ranged read fetches only the chunks it covers.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from examples.service.auth import Principal
from examples.service.deps import Service, get_service, require
from examples.service.problems import Problem
from examples.service.schemas import FileEntry, SnapshotOut
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

import snapvault as sv

__all__ = ["parse_range", "router"]

router = APIRouter(tags=["snapshots"])
Svc = Annotated[Service, Depends(get_service)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
# An ID, a prefix, latest, latest@<policy> or <policy>@<ISO time>: never a slash.
Ref = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@+-]+$")]
SnapPath = Annotated[str, Query(min_length=1, max_length=4096, pattern=r"^/", description="an absolute path")]
_CHUNK = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def snapshot_json(m: sv.Manifest) -> SnapshotOut:
    doc = m.model_dump(mode="json")
    doc.update(id=m.id, short_id=m.short_id)
    return SnapshotOut.model_validate(doc)


@router.get("/snapshots", summary="List snapshots, oldest first, with filters")
def list_snapshots(
    service: Svc,
    _: Viewer,
    host: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    tag: Annotated[list[str], Query(description="comma-separated tags, all required; repeat for any")] = [],  # noqa: B006
    path: Annotated[list[str], Query(description="absolute source paths, all required")] = [],  # noqa: B006
    policy: str | None = None,
) -> list[SnapshotOut]:
    where = sv.SnapshotFilter(hosts=host, tags=tag, paths=path, policy=policy)
    return [snapshot_json(m) for m in service.repo.snapshots() if where.matches(m)]


@router.get("/snapshots/{ref}", summary="One snapshot's manifest")
def get_snapshot(ref: Ref, service: Svc, _: Viewer) -> SnapshotOut:
    return snapshot_json(service.snapshot(ref))


@router.delete("/snapshots/{ref}", summary="Forget a snapshot (its data stays until a prune)")
def delete_snapshot(ref: Ref, service: Svc, _: Admin) -> dict[str, list[str]]:
    groups = service.repo.forget([service.snapshot(ref).id], now=service.clock())
    return {"removed": [sid for g in groups for sid in g.removed]}


@router.get("/snapshots/{ref}/files", summary="The entries of a directory in a snapshot")
def list_files(
    ref: Ref, service: Svc, _: Viewer, path: Annotated[str, Query(max_length=4096, pattern=r"^/")] = "/"
) -> list[FileEntry]:
    fs = service.snapfs()
    out = []
    for e in fs.ls(f"{ref}/{path.lstrip('/')}", detail=True):
        inside = "/" + e["name"].partition("/")[2]
        out.append(
            FileEntry(
                path=inside,
                name=posixpath.basename(inside),
                type=e["type"],
                size=e["size"],
                mode=e["mode"],
                mtime_ns=e["mtime_ns"],
                user=e.get("user"),
                group=e.get("group"),
                destination=e.get("destination"),
            )
        )
    return out


@router.get("/snapshots/{before}/diff/{after}", summary="What changed from one snapshot to another")
def diff(before: Ref, after: Ref, service: Svc, _: Viewer) -> dict[str, Any]:
    result: dict[str, Any] = service.repo.diff(service.snapshot(before), service.snapshot(after)).to_json()
    return result


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` one ``bytes=`` range asks for, or None to send the whole file.

    A header that is not one byte range (several ranges, other units) is ignored, as RFC 9110
    allows; a range that is valid but outside the file raises 416.
    """
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first, last = m.group(1), m.group(2)
    if first == "":
        length = int(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> Problem:
    return Problem(
        416, "range-not-satisfiable", f"the file has {size} bytes", headers={"Content-Range": f"bytes */{size}"}
    )


@router.get(
    "/snapshots/{ref}/download",
    summary="Download a file from a snapshot (HTTP Range supported)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file"},
        206: {"content": {"application/octet-stream": {}}, "description": "The range asked for"},
    },
)
def download(ref: Ref, path: SnapPath, request: Request, service: Svc, _: Viewer) -> StreamingResponse:
    """Streams the file's bytes; one ``Range: bytes=...`` range gives 206 with exactly those
    bytes. ``ETag`` is the content's key (from its chunk IDs); ``If-Range`` with another
    ETag sends the whole file."""
    fs = service.snapfs()
    where = f"{ref}/{path.lstrip('/')}"
    info = fs.info(where)
    if info["type"] != "file":
        raise Problem(409, "not-a-file", f"{path} is a {info['type']}, not a regular file")
    size = int(info["size"])
    etag = f'"{fs.ukey(where)}"'
    if_range = request.headers.get("if-range")
    span = parse_range(request.headers.get("range"), size) if if_range in (None, etag) else None
    start, end = span if span is not None else (0, size)
    handle = fs.open(where, "rb")

    def body() -> Iterator[bytes]:
        # A sync generator: Starlette iterates it in its thread pool.
        with handle:
            handle.seek(start)
            left = end - start
            while left > 0:
                piece = handle.read(min(_CHUNK, left))
                if not piece:
                    break
                left -= len(piece)
                yield piece

    name = posixpath.basename(path) or "file"
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start),
        "ETag": etag,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
    }
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(
        body(), status_code=206 if span is not None else 200, media_type="application/octet-stream", headers=headers
    )
