"""The real objects the fuzzers mutate, written by the library's own encoders with real keys.

Three repositories on fsspec's memory filesystem cover the sealers and codecs a reader meets:
AES-256-GCM with zstd, ChaCha20-Poly1305 storing blobs raw, and an unencrypted repository (keyed
checksum, keys in clear) with zstd. Each holds one coherent snapshot (data blobs, a subdirectory
tree, a root tree, a manifest that names it), two packs, an index file, policy records, a run
record and a quarantine record, all written through the repository's own write path.

Every random byte comes from one seeded generator per repository and every time is fixed, so
the objects are byte-identical on every run: a derandomized fuzzer then meets the same inputs
each time and cannot flake.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import fsspec

import snapvault as sv
from snapvault.pipeline.codecs import Codec, NoCompression, Zstd
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import INDEX_AD
from snapvault.pipeline.pack import HEADER_AD, TRAILER_SIZE, PackEntry, PackWriter, blob_ad
from snapvault.pipeline.tree import Node, encode_tree
from snapvault.policy.records import RunRecord, save_policy_record, save_run
from snapvault.repository import layout
from snapvault.repository.manifest import FileError, Manifest, SnapshotStats, Verification
from snapvault.retention import GFS, KeepLast, KeepTags, KeepWithin, Union
from snapvault.storage import Store, open_store
from tests.conftest import FAST_KDF, PASSWORD

__all__ = ["PASSWORD", "Blob", "Corpus", "Material", "Terse", "build_corpus"]

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)

# Plaintexts that exercise both codec paths: compressible text is stored as a zstd frame,
# random bytes and the empty chunk stay raw (wire ID 0) even under zstd.
_TEXT = b"".join(b"line %d of a log file that compresses well\n" % i for i in range(400))


class Terse:
    """Printed by its ``repr`` in hypothesis's failure reports, not field by field (objects are long)."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


@dataclass(frozen=True)
class Blob:
    """One stored blob and what its index entry says about it."""

    type: BlobType
    id: bytes
    sealed: bytes
    raw_length: int
    plaintext: bytes
    frame: bytes


@dataclass(repr=False)
class Material(Terse):
    """Everything one repository stored, as the stored bytes and their inner layers."""

    name: str
    repo: sv.Repository
    config: bytes
    key_file: bytes
    blobs: list[Blob]
    packs: list[tuple[bytes, bytes, list[PackEntry]]]  # (pack ID, stored bytes, header entries)
    pack_headers: list[bytes]  # the plain header of each pack, before sealing
    index_stored: bytes
    index_frame: bytes
    trees: list[tuple[bytes, list[Node]]]  # (plaintext, nodes)
    manifest_stored: bytes
    manifest: Manifest
    policy_stored: list[bytes]
    run_stored: bytes
    run: RunRecord
    quarantine_stored: bytes
    quarantine: frozenset[bytes]
    policies: dict[str, sv.Policy] = field(default_factory=dict)
    # An empty store beside the repository, for decoders that read a whole layout (opening).
    scratch: Store | None = None

    def __repr__(self) -> str:  # failure reports print it; the objects are long
        return f"Material({self.name!r})"


@dataclass
class Corpus:
    """The three repositories' material; :meth:`close` removes them from the memory filesystem."""

    materials: list[Material]
    urls: list[str]

    def close(self) -> None:
        fs = fsspec.filesystem("memory")
        for url in self.urls:
            if fs.exists(url):
                fs.rm(url, recursive=True)


def _seeded(name: str) -> Callable[[int], bytes]:
    rng = random.Random(hashlib.sha256(name.encode()).digest())
    return rng.randbytes


def _policies() -> list[sv.Policy]:
    """Policies that use every field a record can hold and every built-in strategy."""
    return [
        sv.Policy(
            name="docs",
            sources=["/home/me/docs"],
            exclude=["*.tmp", "!keep.tmp", "build/"],
            backup_type="incremental",
            schedule="0 2 * * *",
            timezone="Europe/Berlin",
            retention=GFS(daily=7, weekly=4, monthly=12, timezone="Europe/Berlin"),
            verify="sample:10%",
            compression="zstd:5",
            max_concurrency=4,
            tags=["docs", "nightly"],
            pre_hooks=["pg_dump -f db.sql"],
            post_hooks=["rm -f db.sql"],
        ),
        sv.Policy(
            name="mail.archive_2",
            sources=["/srv/mail", "/srv/mail-extra"],
            backup_type="snapshot",
            retention=Union([KeepLast(3), KeepWithin("7d"), KeepTags(["keep"])]),
            verify="all",
            compression="none",
        ),
    ]


def _nodes(data_ids: list[tuple[bytes, int]], subtree: bytes | None) -> list[Node]:
    """Every node type and every field, so each branch of the tree decoder has a real seed."""
    (text_id, text_len), (rand_id, rand_len), (empty_id, _), (big_id, big_len) = data_ids
    common = {"uid": 1000, "gid": 1000, "mtime_ns": 1_767_225_600_123_456_789, "ctime_ns": 1_767_225_601_000_000_000}
    nodes = [
        Node("log.txt", "file", mode=0o644, size=text_len, inode=11, dev=2049, content=(text_id.hex(),), **common),
        Node(
            "r\udcffaw.bin",  # a non-UTF-8 name, decoded with surrogateescape as the format says
            "file",
            mode=0o4755,
            size=rand_len + big_len,
            inode=12,
            dev=2049,
            links=2,
            content=(rand_id.hex(), big_id.hex()),
            xattrs=(("user.comment", "aGVsbG8="), ("user.x", "QQ==")),
            **common,
        ),
        Node("empty", "file", mode=0o600, inode=13, dev=2049, content=(empty_id.hex(),), **common),
        Node("link", "symlink", mode=0o777, target="../somewhere/ü", **common),
        Node("fifo", "fifo", mode=0o644),
        Node("sock", "socket", mode=0o755),
        Node("tty", "chardev", mode=0o620, rdev=(4 << 8) | 1),
        Node("sda", "blockdev", mode=0o660, rdev=(8 << 8)),
    ]
    if subtree is not None:
        nodes.append(Node("sub", "dir", mode=0o2775, subtree=subtree.hex(), inode=14, dev=2049, links=3, **common))
    return nodes


def _material(name: str, encryption: str, codec: Codec) -> tuple[Material, str]:
    url = f"memory://fuzz-{name}-{uuid.uuid4().hex}"
    rnd = _seeded(name)
    password = None if encryption == "none" else PASSWORD
    repo = sv.Repository.init(url, password, encryption=encryption, compression=codec, kdf=FAST_KDF, random=rnd)
    config = repo.store.get(layout.CONFIG)
    (key_entry,) = list(repo.store.list(layout.KEYS))
    key_file = repo.store.get(key_entry.key)

    def add_blobs(btype: BlobType, plaintexts: list[bytes]) -> list[Blob]:
        out = []
        for p in plaintexts:
            bid = repo.blob_id(p)
            sealed = bytes(repo.seal_blob(btype, bid, p))
            frame = repo.sealer.open(sealed, blob_ad(btype, bid))
            out.append(Blob(btype, bid, sealed, len(p), p, frame))
        return out

    def write_pack(blobs: list[Blob]) -> tuple[bytes, bytes, list[PackEntry], bytes]:
        writer = PackWriter()
        for b in blobs:
            writer.add(b.type, b.id, b.sealed, b.raw_length)
        pid, data, entries = repo.finish_pack(writer)
        repo.write_pack(pid, data)
        # The plain header, as the pack's own trailer locates it (docs/format.md, "Pack files").
        hlen = int.from_bytes(data[-TRAILER_SIZE:-4], "little")
        header = repo.sealer.open(bytes(data[-TRAILER_SIZE - hlen : -TRAILER_SIZE]), HEADER_AD)
        return pid, bytes(data), entries, header

    data_blobs = add_blobs(BlobType.DATA, [_TEXT, rnd(3000), b"", _TEXT * 16])
    data_ids = [(b.id, b.raw_length) for b in data_blobs]
    sub_raw = encode_tree(_nodes(data_ids, None))
    (sub_blob,) = add_blobs(BlobType.TREE, [sub_raw])
    root_raw = encode_tree(_nodes(data_ids, sub_blob.id))
    (root_blob,) = add_blobs(BlobType.TREE, [root_raw])
    tree_blobs = [sub_blob, root_blob]

    data_pack = write_pack(data_blobs)
    tree_pack = write_pack(tree_blobs)
    packs = [(data_pack[0], data_pack[1], data_pack[2]), (tree_pack[0], tree_pack[1], tree_pack[2])]
    index_key = repo.write_index([(pid, entries) for pid, _, entries in packs])
    index_stored = repo.store.get(index_key)
    index_frame = repo.sealer.open(index_stored, INDEX_AD)

    manifest = Manifest(
        time=NOW,
        hostname="host-1",
        username="me",
        uid=1000,
        gid=1000,
        paths=["/home/me/docs", "/srv/ü"],
        tags=["docs", "nightly"],
        excludes=["*.tmp"],
        parent="ab" * 32,
        tree=root_blob.id.hex(),
        stats=SnapshotStats(files_new=3, total_files=3, total_bytes=123456, bytes_read=123456, duration_s=1.25),
        errors=[FileError(path="/home/me/docs/secret", error="Permission denied")],
        program_version=sv.__version__,
        policy="docs",
        backup_type="incremental",
        base="cd" * 32,
        inconsistent=["/home/me/docs/growing.log"],
        rereads=2,
        verification=Verification(mode="sample:10%", blobs_added=5, blobs_checked=1, ok=True),
        copied_from="ef" * 32,
    )
    # The repository's own commit; its key names the stored bytes.
    saved = repo.save_manifest(manifest)
    manifest_stored = repo.store.get(layout.snapshot_key(saved.id))
    manifest = saved

    policies = _policies()
    for i, pol in enumerate(policies):
        save_policy_record(repo, pol.name, pol, NOW + timedelta(minutes=i))
    save_policy_record(repo, "gone", None, NOW)  # a removal record: "policy": null
    policy_stored = [repo.store.get(k) for k in repo.list_keys(layout.POLICIES)]

    run = RunRecord(
        policy="docs",
        job_id="job-0001",
        status="failed",
        backup_type="incremental",
        started=NOW,
        ended=NOW + timedelta(seconds=42),
        snapshot=None,
        error="source /home/me/docs is missing",
        bytes_read=1 << 20,
        bytes_added=4096,
        bytes_stored=2048,
    )
    save_run(repo, run)
    (run_key,) = repo.list_keys(layout.RUNS)
    run_stored = repo.store.get(run_key)

    repo.quarantine_packs([data_pack[0]], "read-back of the pack failed")
    (q_key,) = repo.list_keys(layout.QUARANTINE)
    quarantine_stored = repo.store.get(q_key)

    # The decoders that read a folder (policies, runs, quarantine, snapshots) are fuzzed one
    # object at a time: the folders are emptied so each example sees only its own object.
    for folder in (layout.POLICIES, layout.RUNS, layout.QUARANTINE, layout.SNAPSHOTS):
        for key in repo.list_keys(folder):
            repo.store.delete(key)

    material = Material(
        name=name,
        repo=repo,
        config=config,
        key_file=key_file,
        blobs=data_blobs + tree_blobs,
        packs=packs,
        pack_headers=[data_pack[3], tree_pack[3]],
        index_stored=index_stored,
        index_frame=index_frame,
        # Decoded nodes come back sorted by name, as the encoder writes them.
        trees=[
            (sub_raw, sorted(_nodes(data_ids, None), key=lambda n: n.name)),
            (root_raw, sorted(_nodes(data_ids, sub_blob.id), key=lambda n: n.name)),
        ],
        manifest_stored=manifest_stored,
        manifest=manifest,
        policy_stored=policy_stored,
        run_stored=run_stored,
        run=run,
        quarantine_stored=quarantine_stored,
        quarantine=frozenset([data_pack[0]]),
        policies={p.name: p for p in policies},
    )
    return material, url


def build_corpus() -> Corpus:
    """Write the three repositories and collect their objects."""
    materials, urls = [], []
    for name, encryption, codec in (
        ("aes-zstd", "aes-256-gcm", Zstd(3)),
        ("chacha-raw", "chacha20-poly1305", NoCompression()),
        ("plain-zstd", "none", Zstd(19)),
    ):
        m, url = _material(name, encryption, codec)
        m.scratch = open_store(url + "-scratch")
        materials.append(m)
        urls += [url, url + "-scratch"]
    return Corpus(materials, urls)
