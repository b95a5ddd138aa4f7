"""The decoders under fuzzing and the real objects each one reads: one :class:`Target` each.

A target's seeds are real objects from :mod:`tests.fuzz.corpus` at one or more *layers*:
``stored`` is the object as the store holds it; inner layers (a blob's codec frame, a pack's
plain header, an index's zstd frame or its decompressed table, a record's JSON, the master keys
inside a key file) are mutated there and then sealed again with the repository's real key, so
the mutation passes authentication and reaches the parser behind it. Each target states the
errors its decoder may raise and the most it may allocate; :mod:`tests.fuzz.oracle` judges.

Both the hypothesis suite and ``atheris_driver.py`` use this table.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import zstandard
from hypothesis import strategies as st

import snapvault
from snapvault.errors import IntegrityError, RepositoryError, UnknownStrategy, UnsupportedFormat, WrongPassword
from snapvault.pipeline.blob import blob_limit
from snapvault.pipeline.codecs import decode as codec_decode
from snapvault.pipeline.crypto import AEADSealer, PlainSealer, make_sealer
from snapvault.pipeline.ids import BlobType, object_hash
from snapvault.pipeline.index import INDEX_AD, MAX_INDEX
from snapvault.pipeline.pack import HEADER_AD, PACK_MAGIC, read_header
from snapvault.pipeline.tree import decode_tree
from snapvault.policy.records import POLICY_AD, RUN_AD, PolicyRecords, load_runs, read_policies
from snapvault.repository import layout
from snapvault.repository.config import (
    KdfParams,
    MasterKeys,
    RepoConfig,
    open_key_file,
    open_plain_key_file,
)
from snapvault.repository.repo import QUARANTINE_AD, SNAPSHOT_AD
from snapvault.storage import Store
from tests.fuzz.corpus import PASSWORD, Corpus, Material, Terse, build_corpus
from tests.fuzz.mutate import U32, Raw, dump, pick
from tests.fuzz.oracle import STORED, STORED_JSON, Layer, Seed, Target, stored_as_is

__all__ = ["TARGET_NAMES", "build_targets", "close_shared", "shared"]

MiB = 1 << 20
# Salt and nonce for re-sealing mutated plaintexts: fixed, so every run seals to the same bytes.
_RANDOM = bytes(range(28))
_KEY_FILE_AD = b"snapvault key file"  # docs/format.md, "Sealing"


# -- codec frames and blobs ------------------------------------------------------------------


@dataclass(frozen=True)
class BlobMeta(Terse):
    material: Material
    type: BlobType
    id: bytes
    raw_length: int | None


def _blob_targets(materials: list[Material]) -> list[Target]:
    codec = Target(
        name="codec-frame",
        decode=lambda limit, data: codec_decode(data, max_size=limit),
        allowed=(IntegrityError,),
        bound=lambda limit, n: limit + 4 * n + MiB,
        bound_text="the output limit (the one allocation a frame may declare) + 4x the frame + 1 MiB",
        layers=(Layer("frame", stored_as_is),),
        seeds=tuple(
            Seed(blob_limit(b.type), {"frame": b.frame}, b.plaintext, f"{m.name}/{b.type.name}/{b.raw_length}")
            for m in materials
            for b in m.blobs
        ),
    )

    def reseal_frame(meta: BlobMeta, frame: bytes) -> bytes:
        return meta.material.repo.sealer.seal(frame, bytes([int(meta.type)]) + meta.id, random=_RANDOM)

    def open_one(meta: BlobMeta, data: bytes) -> bytes:
        return meta.material.repo.open_blob(meta.type, meta.id, data, meta.raw_length)

    def hostile(draw: st.DrawFn, meta: BlobMeta) -> BlobMeta:
        # An index entry is attacker-controlled too: any u32 as the plaintext size, the wrong type.
        rl = meta.raw_length or 0
        length = pick(draw, [None, 0, 1, max(rl - 1, 0), rl + 1, 2**32 - 1, draw(U32)])
        return replace(meta, raw_length=length, type=pick(draw, list(BlobType)))

    def blob_bound(meta: BlobMeta, n: int) -> int:
        limit = blob_limit(meta.type)
        out = limit if meta.raw_length is None else min(limit, meta.raw_length)
        return out + 4 * n + MiB

    blob = Target(
        name="blob",
        decode=open_one,
        allowed=(IntegrityError,),
        bound=blob_bound,
        bound_text="min(index raw_length, the type's format limit) + 4x the stored blob + 1 MiB",
        layers=(STORED, Layer("frame", reseal_frame)),
        seeds=tuple(
            Seed(
                BlobMeta(m, b.type, b.id, b.raw_length),
                {"stored": b.sealed, "frame": b.frame},
                b.plaintext,
                f"{m.name}/{b.type.name}/{b.raw_length}",
            )
            for m in materials
            for b in m.blobs
        ),
        hostile_meta=hostile,
    )
    return [codec, blob]


# -- packs and indexes -----------------------------------------------------------------------


@dataclass(frozen=True)
class PackMeta(Terse):
    material: Material
    body: bytes = field(repr=False)  # the blobs before the header
    tail: int | None = None  # read only the pack's last bytes, as a ranged read does
    size_delta: int = 0  # the pack size a listing reports, off by this much


def _pack_target(materials: list[Material]) -> Target:
    def seal_header(meta: PackMeta, header: bytes) -> bytes:
        sealed = meta.material.repo.sealer.seal(header, HEADER_AD, random=_RANDOM)
        return meta.body + sealed + len(sealed).to_bytes(4, "little") + PACK_MAGIC

    def read(meta: PackMeta, data: bytes) -> Any:
        tail = data if meta.tail is None else data[-meta.tail :]
        return read_header(meta.material.repo.sealer, tail, max(0, len(data) + meta.size_delta))

    def hostile(draw: st.DrawFn, meta: PackMeta) -> PackMeta:
        # A ranged read of the tail, and the pack size a listing reports: both can lie.
        tail = pick(draw, [None, 1, 8, 9, 64, 1000, draw(U32) % (1 << 20)])
        delta = pick(draw, [0, -1, 1, -(1 << 40), 1 << 32, draw(U32) - (1 << 31)])
        return replace(meta, tail=tail, size_delta=delta)

    seeds = []
    for m in materials:
        for (_, data, entries), header in zip(m.packs, m.pack_headers, strict=True):
            hlen = int.from_bytes(data[-8:-4], "little")
            body = data[: len(data) - 8 - hlen]
            seeds.append(Seed(PackMeta(m, body), {"stored": data, "header": header}, entries, f"{m.name}/{len(data)}"))
    return Target(
        name="pack-header",
        decode=read,
        allowed=(IntegrityError,),
        bound=lambda meta, n: 16 * n + MiB,
        bound_text="16x the pack + 1 MiB (a header entry of 49 bytes becomes one PackEntry)",
        layers=(STORED, Layer("header", seal_header)),
        seeds=tuple(seeds),
        hostile_meta=hostile,
    )


def _through_store(folder: str, read: Callable[[Material, str], Any]) -> Callable[[Material, bytes], Any]:
    """A decoder reached the way a reader reaches it: the object stored under its name, then read."""

    def decode(m: Material, data: bytes) -> Any:
        key = layout.object_key(folder, object_hash(data).hex())
        m.repo.store.put_if_absent(key, data)
        try:
            return read(m, key)
        finally:
            m.repo.store.delete(key)

    return decode


def _resealer(ad: bytes) -> Callable[[Material, bytes], bytes]:
    def seal(m: Material, plain: bytes) -> bytes:
        return m.repo.sealer.seal(plain, ad, random=_RANDOM)

    return seal


def _index_target(materials: list[Material]) -> Target:
    seal_frame = _resealer(INDEX_AD)

    def seal_raw(m: Material, raw: bytes) -> bytes:
        # What encode_index does: one zstd frame that declares its size.
        return seal_frame(m, zstandard.ZstdCompressor(level=3).compress(raw))

    seeds = tuple(
        Seed(
            m,
            {
                "stored": m.index_stored,
                "frame": m.index_frame,
                "raw": zstandard.ZstdDecompressor().decompress(m.index_frame),
            },
            [(pid, entries) for pid, _, entries in m.packs],
            m.name,
        )
        for m in materials
    )
    return Target(
        name="index",
        decode=_through_store(layout.INDEX, lambda m, key: m.repo.read_index_file(key)),
        allowed=(IntegrityError,),
        bound=lambda m, n: MAX_INDEX + 64 * n + MiB,
        bound_text="MAX_INDEX (the declared size a frame may ask for) + 64x the stored file + 1 MiB",
        layers=(STORED, Layer("frame", seal_frame), Layer("raw", seal_raw)),
        seeds=seeds,
    )


# -- trees, manifests, records ---------------------------------------------------------------


def _json_bound(meta: Any, n: int) -> int:
    return 64 * n + 2 * MiB


_JSON_BOUND = "64x the input + 2 MiB (parsed JSON objects cost tens of bytes per input byte)"


def _tree_target(materials: list[Material]) -> Target:
    return Target(
        name="tree",
        decode=lambda meta, data: decode_tree(data),
        allowed=(IntegrityError,),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(Layer("plain", stored_as_is, json=True),),
        seeds=tuple(
            Seed(None, {"plain": raw}, nodes, f"{m.name}/{len(raw)}") for m in materials for raw, nodes in m.trees
        ),
    )


def _manifest_target(materials: list[Material]) -> Target:
    def load(m: Material, key: str) -> Any:
        # A re-sealed manifest is another object with another name: the ID is checked here and
        # the content compared without it.
        manifest = m.repo.load_manifest(layout.name_of(key))
        return manifest.id == layout.name_of(key), manifest.model_copy(update={"id": ""})

    return Target(
        name="manifest",
        decode=_through_store(layout.SNAPSHOTS, load),
        allowed=(IntegrityError,),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(STORED, Layer("json", _resealer(SNAPSHOT_AD), json=True)),
        seeds=tuple(
            Seed(
                m,
                {"stored": m.manifest_stored, "json": m.repo.sealer.open(m.manifest_stored, SNAPSHOT_AD)},
                (True, m.manifest.model_copy(update={"id": ""})),
                m.name,
            )
            for m in materials
        ),
    )


def _check_policies(found: PolicyRecords) -> None:
    # read_policies reports an unreadable record instead of raising (README, "Policies and
    # jobs"); what it reports must be one of the two documented errors.
    for b in found.broken:
        assert isinstance(b.error, IntegrityError | UnknownStrategy), (
            f"broken policy record {b.key} reported with {type(b.error).__name__}: {b.error}"
        )
    for name, pol in found.policies.items():
        assert isinstance(pol, snapvault.Policy), name


def _policies_in(m: Material, record: bytes) -> PolicyRecords:
    """What read_policies gives for a repository holding only this record."""
    doc = json.loads(record)
    found = {} if doc["policy"] is None else {doc["name"]: m.policies[doc["name"]]}
    return PolicyRecords(found, [])


def _record_targets(materials: list[Material]) -> list[Target]:
    policy = Target(
        name="policy-record",
        decode=_through_store(layout.POLICIES, lambda m, key: read_policies(m.repo)),
        allowed=(),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(STORED, Layer("json", _resealer(POLICY_AD), json=True)),
        seeds=tuple(
            Seed(
                m,
                {"stored": stored, "json": m.repo.sealer.open(stored, POLICY_AD)},
                _policies_in(m, m.repo.sealer.open(stored, POLICY_AD)),
                f"{m.name}/policy{i}",
            )
            for m in materials
            for i, stored in enumerate(m.policy_stored)
        ),
        check=_check_policies,
    )
    run = Target(
        name="run-record",
        decode=_through_store(layout.RUNS, lambda m, key: load_runs(m.repo)),
        allowed=(IntegrityError,),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(STORED, Layer("json", _resealer(RUN_AD), json=True)),
        seeds=tuple(
            Seed(m, {"stored": m.run_stored, "json": m.repo.sealer.open(m.run_stored, RUN_AD)}, [m.run], m.name)
            for m in materials
        ),
    )
    quarantine = Target(
        name="quarantine-record",
        decode=_through_store(layout.QUARANTINE, lambda m, key: m.repo.quarantined_packs()),
        allowed=(IntegrityError,),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(STORED, Layer("json", _resealer(QUARANTINE_AD), json=True)),
        seeds=tuple(
            Seed(
                m,
                {
                    "stored": m.quarantine_stored,
                    "json": m.repo.sealer.open(m.quarantine_stored, QUARANTINE_AD),
                },
                m.quarantine,
                m.name,
            )
            for m in materials
        ),
    )
    return [policy, run, quarantine]


# -- config and key material -----------------------------------------------------------------


@dataclass(frozen=True)
class KeyFileMeta(Terse):
    key_file: bytes = field(repr=False)
    sealer: AEADSealer | PlainSealer


def _key_file_meta(m: Material) -> KeyFileMeta:
    """The key file's own key, derived from the password as a reader derives it."""
    doc = json.loads(m.key_file)
    k = doc["kdf"]
    kdf = KdfParams(k["memory_kib"], k["iterations"], k["lanes"])
    return KeyFileMeta(m.key_file, make_sealer(doc["aead"], kdf.derive(PASSWORD.encode(), base64.b64decode(k["salt"]))))


def _seal_inner_keys(meta: KeyFileMeta, inner: bytes) -> bytes:
    """The key file with ``inner`` as its master-key JSON, sealed under the password's key."""
    doc = json.loads(meta.key_file)
    doc["data"] = base64.b64encode(meta.sealer.seal(inner, _KEY_FILE_AD, random=_RANDOM)).decode()
    return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"


def _kdf_affordable(data: bytes) -> bool:
    """False if opening this key file would run an Argon2id the format allows but that is slow.

    The format lets a key file ask for up to 4 GiB and 64 passes (docs/format.md, "Master keys
    and key files"): that cost is the design, not a bug, and a fuzzer cannot pay it thousands of
    times. Anything the reader would refuse before deriving is affordable.
    """
    try:
        k = json.loads(data)["kdf"]
        memory, passes, lanes = int(k["memory_kib"]), int(k["iterations"]), int(k["lanes"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError):
        return True  # the reader fails on the same steps, before deriving anything
    refused = memory > 4 << 20 or passes > 64 or lanes > 64 or memory < 8 * lanes or passes < 1 or lanes < 1
    return refused or (memory * passes <= 16 << 10 and lanes <= 8)


def _key_targets(materials: list[Material]) -> list[Target]:
    config = Target(
        name="config",
        decode=lambda meta, data: RepoConfig.from_bytes(data),
        allowed=(IntegrityError, UnsupportedFormat),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(STORED_JSON,),
        seeds=tuple(Seed(None, {"stored": m.config}, m.repo.config, m.name) for m in materials),
    )
    master = Target(
        name="master-keys",
        decode=lambda meta, data: MasterKeys.from_json(data),
        allowed=(IntegrityError,),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(Layer("json", stored_as_is, json=True),),
        seeds=tuple(Seed(None, {"json": m.repo.master_keys.to_json()}, m.repo.master_keys, m.name) for m in materials),
    )

    key_seeds = [
        Seed(
            _key_file_meta(m), {"stored": m.key_file, "inner": m.repo.master_keys.to_json()}, m.repo.master_keys, m.name
        )
        for m in materials
        if m.repo.encrypted
    ]
    key_file = Target(
        name="key-file",
        decode=lambda meta, data: open_key_file(data, PASSWORD.encode()),
        allowed=(IntegrityError, UnsupportedFormat, WrongPassword),
        bound=_json_bound,
        bound_text=_JSON_BOUND + "; Argon2id's own memory is outside Python's allocator and is capped by the format",
        layers=(STORED_JSON, Layer("inner", _seal_inner_keys, json=True)),
        seeds=tuple(key_seeds),
        admit=_kdf_affordable,
    )
    plain_key_file = Target(
        name="plain-key-file",
        decode=lambda meta, data: open_plain_key_file(data),
        allowed=(IntegrityError,),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(STORED_JSON,),
        seeds=tuple(
            Seed(None, {"stored": m.key_file}, m.repo.master_keys, m.name) for m in materials if not m.repo.encrypted
        ),
    )
    return [config, master, key_file, plain_key_file]


@dataclass(frozen=True)
class OpenMeta(Terse):
    material: Material
    part: str  # "config" or "key-file": the object this seed's mutations replace
    store: Store = field(repr=False)
    keys: KeyFileMeta | None = None  # how an encrypted repository's key file seals master keys


def _open_target(materials: list[Material]) -> Target:
    # Opening is where config, key file and master keys meet: values each decoder passes on
    # (a chunker seed, an encryption name) are used here for the first time.
    def seal_keys(meta: OpenMeta, inner: bytes) -> bytes:
        if meta.keys is not None:
            return _seal_inner_keys(meta.keys, inner)
        # An unencrypted repository's key file holds the master keys in clear: splice the
        # bytes in where they belong, whatever they are.
        doc = json.loads(meta.material.key_file)
        doc["keys"] = Raw("@KEYS@")
        before, after = dump(doc, canonical=False).encode().split(b"@KEYS@")
        return before + inner + after

    def open_repo(meta: OpenMeta, data: bytes) -> Any:
        m, store = meta.material, meta.store
        config = data if meta.part == "config" else m.config
        key_file = data if meta.part == "key-file" else m.key_file
        for entry in list(store.list(layout.KEYS)):
            store.delete(entry.key)
        if store.exists(layout.CONFIG):
            store.delete(layout.CONFIG)
        store.put_if_absent(layout.object_key(layout.KEYS, object_hash(key_file).hex()), key_file)
        store.put_if_absent(layout.CONFIG, config)
        repo = snapvault.Repository.open(store.url, PASSWORD if m.repo.encrypted else None, store=store)
        return repo.config, repo.master_keys

    seeds = []
    for m in materials:
        assert m.scratch is not None
        store = m.scratch
        keys = _key_file_meta(m) if m.repo.encrypted else None
        expected = (m.repo.config, m.repo.master_keys)
        seeds.append(Seed(OpenMeta(m, "config", store), {"config": m.config}, expected, f"{m.name}/config"))
        seeds.append(
            Seed(
                OpenMeta(m, "key-file", store, keys),
                {"key-file": m.key_file, "keys": m.repo.master_keys.to_json()},
                expected,
                f"{m.name}/key-file",
            )
        )
    return Target(
        name="repository-open",
        decode=open_repo,
        allowed=(IntegrityError, RepositoryError),
        bound=_json_bound,
        bound_text=_JSON_BOUND,
        layers=(
            Layer("config", stored_as_is, json=True),
            Layer("key-file", stored_as_is, json=True),
            Layer("keys", seal_keys, json=True),
        ),
        seeds=tuple(seeds),
        admit=_kdf_affordable,
    )


def build_targets(corpus: Corpus) -> dict[str, Target]:
    """Every decoder's target, by name."""
    ms = corpus.materials
    targets = [
        *_blob_targets(ms),
        _pack_target(ms),
        _index_target(ms),
        _tree_target(ms),
        _manifest_target(ms),
        *_record_targets(ms),
        *_key_targets(ms),
        _open_target(ms),
    ]
    return {t.name: t for t in targets}


#: The names of every target, in a stable order (for parametrisation before the corpus exists).
TARGET_NAMES = (
    "codec-frame",
    "blob",
    "pack-header",
    "index",
    "tree",
    "manifest",
    "policy-record",
    "run-record",
    "quarantine-record",
    "config",
    "master-keys",
    "key-file",
    "plain-key-file",
    "repository-open",
)


_shared: list[tuple[Corpus, dict[str, Target]]] = []


def shared() -> dict[str, Target]:
    """The targets over one corpus per process, built on first use (hypothesis strategies need
    them when a test starts, before any fixture could hand them over)."""
    if not _shared:
        corpus = build_corpus()
        _shared.append((corpus, build_targets(corpus)))
    return _shared[0][1]


def close_shared() -> None:
    """Remove the shared corpus's repositories from the memory filesystem."""
    while _shared:
        _shared.pop()[0].close()
