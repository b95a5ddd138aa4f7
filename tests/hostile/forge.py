"""Objects of a repository written byte by byte as docs/format.md lays them out.

The library's own writers never produce a hostile object, so these encoders are written from
the format document alone (the envelope, codec frames, pack files, index files, trees and
manifests) and sealed with a repository's real keys: whatever they make authenticates, and
only the reader's validation of what it says stands between it and the machine. Every part
of every object can be replaced by the caller, which is how the hostile cases are made.

Randomness (salts, nonces) comes from a seeded generator, so a case builds the same bytes on
every run.
"""

from __future__ import annotations

import base64
import json
import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

import snapvault as sv

DATA, TREE = 0, 1

AD_PACK_HEADER = b"snapvault pack header"
AD_INDEX = b"snapvault index"
AD_SNAPSHOT = b"snapvault snapshot"
AD_KEY_FILE = b"snapvault key file"
AD_POLICY = b"snapvault policy"
AD_RUN = b"snapvault run"
AD_QUARANTINE = b"snapvault quarantine"

PACK_MAGIC = b"SVP1"
INDEX_MAGIC = b"SVI1"
ENTRY = struct.Struct("<B32sIII")  # type, blob ID, offset, length, raw_length


def h(data: bytes) -> str:
    """The hex BLAKE3 of stored bytes: every object's name but the config's."""
    return blake3.blake3(data).hexdigest()


def zstd_frame(plain: bytes, *, content_size: bool = True, level: int = 3) -> bytes:
    """A zstd frame of ``plain``, declaring its size or not."""
    return zstandard.ZstdCompressor(level=level, write_content_size=content_size).compress(plain)


def zstd_zeros(size: int) -> bytes:
    """A zstd frame (content size set) of ``size`` zero bytes, compressed as a stream so the
    zeros are never held in memory at once."""
    cobj = zstandard.ZstdCompressor(level=1, write_content_size=True).compressobj(size=size)
    step = 8 << 20
    zeros = bytes(min(step, size))
    parts = []
    left = size
    while left:
        n = min(step, left)
        parts.append(cobj.compress(zeros if n == len(zeros) else zeros[:n]))
        left -= n
    parts.append(cobj.flush())
    return b"".join(parts)


def with_content_size(frame: bytes, declared: int | None) -> bytes:
    """``frame`` with its header rewritten to declare ``declared`` bytes (None: no size).

    The blocks are kept; the new header (RFC 8878, 3.1.1.1) has a window descriptor of 8 MiB,
    more than any frame made here uses, and an 8-byte content size field.
    """
    fhd = frame[4]
    fcs_flag, single, checksum, dict_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 2) & 1, fhd & 3
    fcs_size = {0: 1 if single else 0, 1: 2, 2: 4, 3: 8}[fcs_flag]
    header_end = 5 + (0 if single else 1) + {0: 0, 1: 1, 2: 2, 3: 4}[dict_flag] + fcs_size
    new_fhd = (3 << 6 if declared is not None else 0) | (checksum << 2)
    window = bytes([(23 - 10) << 3])
    size = struct.pack("<Q", declared) if declared is not None else b""
    return frame[:4] + bytes([new_fhd]) + window + size + frame[header_end:]


@dataclass(frozen=True)
class Blob:
    """A sealed blob, ready to go into a pack, with what a header or index says of it."""

    type: int
    id: bytes
    sealed: bytes
    raw_length: int

    @property
    def hex(self) -> str:
        return self.id.hex()


@dataclass(frozen=True)
class Entry:
    """One header or index entry: ``type | blob ID | offset | length | raw_length``."""

    type: int
    id: bytes
    offset: int
    length: int
    raw_length: int

    def pack(self) -> bytes:
        return ENTRY.pack(self.type, self.id, self.offset, self.length, self.raw_length)


def canonical(doc: Any) -> bytes:
    """Canonical JSON: keys sorted, no whitespace, ASCII with escapes."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def in_order(nodes: list[Any]) -> list[Any]:
    """Nodes sorted by name, as readers require, when every one has a text name (a case about
    a name that is not text keeps its order: the name is what it tests)."""
    if all(isinstance(n, dict) and isinstance(n.get("name"), str) for n in nodes):
        return sorted(nodes, key=lambda n: n["name"])
    return nodes


def tree_bytes(nodes: list[dict[str, Any]], version: int = 1) -> bytes:
    return canonical({"nodes": in_order(nodes), "v": version})


class Forge:
    """Writes hand-made objects into the local repository ``repo`` with its real keys.

    Blobs made with :meth:`data` and :meth:`tree` wait in two packs (data and trees apart,
    as the format asks) until :meth:`flush` writes them and one index file listing both.
    """

    def __init__(self, repo: sv.Repository, seed: int = 0) -> None:
        self.root = Path(repo.url)
        self.encryption = repo.config.encryption
        self.encryption_key = repo.master_keys.encryption_key
        self.id_key = repo.master_keys.id_key
        self.rng = random.Random(seed)
        self.pending: dict[int, list[Blob]] = {DATA: [], TREE: []}
        self.queued: set[bytes] = set()

    # -- the envelope ------------------------------------------------------------------------

    def seal(self, plain: bytes, ad: bytes, *, key: bytes | None = None) -> bytes:
        """``salt | nonce | AEAD(plain) | tag``, the AEAD keyed with BLAKE3-keyed(key, salt)."""
        key = key or self.encryption_key
        if self.encryption == "none":
            return plain + blake3.blake3(ad + plain, key=key).digest()
        salt, nonce = self.rng.randbytes(16), self.rng.randbytes(12)
        cipher = ChaCha20Poly1305 if self.encryption == "chacha20-poly1305" else AESGCM
        return salt + nonce + cipher(blake3.blake3(salt, key=key).digest()).encrypt(nonce, plain, ad)

    def put(self, folder: str, stored: bytes, name: str | None = None) -> str:
        """Store ``stored`` under its hash (or ``name``) in ``folder``; return the key."""
        name = name or h(stored)
        key = f"data/{name[:2]}/{name}" if folder == "data" else f"{folder}/{name}"
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(stored)
        return key

    def put_sealed(self, folder: str, plain: bytes, ad: bytes) -> str:
        return self.put(folder, self.seal(plain, ad))

    # -- blobs -------------------------------------------------------------------------------

    def blob_id(self, plain: bytes) -> bytes:
        return blake3.blake3(plain, key=self.id_key).digest()

    def blob(
        self,
        btype: int,
        plain: bytes,
        *,
        frame: bytes | None = None,
        bid: bytes | None = None,
        raw_length: int | None = None,
        ad_type: int | None = None,
    ) -> Blob:
        """Seal ``plain`` as a blob: by default stored raw (codec 0) and named by its keyed ID.

        ``frame`` replaces the codec frame, ``bid`` the ID, ``raw_length`` the size the
        header and index give, ``ad_type`` the type bound into the associated data.
        """
        bid = bid if bid is not None else self.blob_id(plain)
        frame = frame if frame is not None else b"\x00" + plain
        ad = bytes([btype if ad_type is None else ad_type]) + bid
        sealed = self.seal(frame, ad)
        return Blob(btype, bid, sealed, len(plain) if raw_length is None else raw_length)

    def add(self, blob: Blob) -> str:
        """Queue ``blob`` for the next :meth:`flush` (once: an index file lists a blob at most
        once); return its hex ID."""
        if blob.id not in self.queued:
            self.queued.add(blob.id)
            self.pending[TREE if blob.type == TREE else DATA].append(blob)
        return blob.hex

    def data(self, plain: bytes, **kw: Any) -> str:
        return self.add(self.blob(DATA, plain, **kw))

    def tree(self, nodes: list[dict[str, Any]] | bytes, **kw: Any) -> str:
        raw = nodes if isinstance(nodes, bytes) else tree_bytes(nodes)
        return self.add(self.blob(TREE, raw, **kw))

    # -- packs and index files ---------------------------------------------------------------

    def pack(
        self,
        blobs: Sequence[Blob],
        *,
        entries: Sequence[Entry] | None = None,
        header_plain: bytes | None = None,
        header: bytes | None = None,
        trailer: bytes | None = None,
    ) -> tuple[bytes, list[Entry]]:
        """Write ``blob_0 | ... | header | header_length (u32) | "SVP1"``; return the pack ID
        and the entries its header lists (``entries`` replaces them in the header only)."""
        body = bytearray()
        listed = []
        for b in blobs:
            listed.append(Entry(b.type, b.id, len(body), len(b.sealed), b.raw_length))
            body += b.sealed
        in_header = list(entries) if entries is not None else listed
        if header_plain is None:
            header_plain = struct.pack("<BI", 1, len(in_header)) + b"".join(e.pack() for e in in_header)
        if header is None:
            header = self.seal(header_plain, AD_PACK_HEADER)
        if trailer is None:
            trailer = struct.pack("<I", len(header)) + PACK_MAGIC
        stored = bytes(body) + header + trailer
        pid = blake3.blake3(stored).digest()
        self.put("data", stored)
        return pid, listed

    def index_plain(self, packs: Iterable[tuple[bytes, Sequence[Entry]]]) -> bytes:
        packs = list(packs)
        parts = [INDEX_MAGIC, struct.pack("<I", len(packs))]
        for pid, entries in packs:
            parts.append(pid + struct.pack("<I", len(entries)))
            parts += [e.pack() for e in entries]
        return b"".join(parts)

    def index(
        self,
        packs: Iterable[tuple[bytes, Sequence[Entry]]] = (),
        *,
        plain: bytes | None = None,
        compressed: bytes | None = None,
    ) -> str:
        """Write an index file: ``zstd("SVI1" | ...)`` sealed; return its key."""
        if compressed is None:
            compressed = zstd_frame(self.index_plain(packs) if plain is None else plain)
        return self.put_sealed("index", compressed, AD_INDEX)

    def flush(self) -> list[tuple[bytes, list[Entry]]]:
        """Write the queued blobs as one data pack and one tree pack, and one index of both."""
        written = [self.pack(blobs) for blobs in self.pending.values() if blobs]
        self.pending = {DATA: [], TREE: []}
        if written:
            self.index(written)
        return written

    # -- manifests ---------------------------------------------------------------------------

    def manifest_doc(self, tree: str, **fields: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "version": 1,
            "time": "2026-01-02T03:04:05+00:00",
            "hostname": "hostile",
            "paths": ["/x"],
            "tree": tree,
        }
        doc.update(fields)
        return doc

    def manifest(self, tree: str | None = None, *, raw: bytes | None = None, **fields: Any) -> str:
        """Seal a manifest (``raw`` JSON, or one naming ``tree``); return the snapshot ID."""
        if raw is None:
            assert tree is not None
            raw = json.dumps(self.manifest_doc(tree, **fields)).encode()
        return self.put_sealed("snapshots", raw, AD_SNAPSHOT).rsplit("/", 1)[1]

    def commit(self, root: str, **fields: Any) -> str:
        """Flush the queued blobs, then commit a manifest naming ``root``."""
        self.flush()
        return self.manifest(root, **fields)


# -- key files ---------------------------------------------------------------------------------


def master_keys_json(repo: sv.Repository, **change: Any) -> bytes:
    """The master-key JSON of ``repo`` (docs/format.md, "Master keys"), fields replaced by ``change``."""
    doc = {
        "chunker_seed": repo.master_keys.chunker_seed,
        "config_hash": repo.master_keys.config_hash.hex(),
        "encryption_key": base64.b64encode(repo.master_keys.encryption_key).decode(),
        "id_key": base64.b64encode(repo.master_keys.id_key).decode(),
    }
    doc.update(change)
    return json.dumps(doc, sort_keys=True).encode()


def key_file(
    plain: bytes,
    password: bytes,
    *,
    memory_kib: int = 64,
    iterations: int = 1,
    lanes: int = 1,
    aead: str = "aes-256-gcm",
    seed: int = 0,
    data: bytes | None = None,
) -> bytes:
    """A key file sealing ``plain`` under ``password``: Argon2id(password, salt) as the envelope's
    key, associated data ``snapvault key file``. ``data`` replaces the sealed bytes (and then no
    key is derived, however costly the parameters)."""
    rng = random.Random(seed)
    salt = rng.randbytes(16)
    if data is None:
        kek = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_kib).derive(
            password
        )
        nonce_salt, nonce = rng.randbytes(16), rng.randbytes(12)
        cipher = ChaCha20Poly1305 if aead == "chacha20-poly1305" else AESGCM
        sub = blake3.blake3(nonce_salt, key=kek).digest()
        data = nonce_salt + nonce + cipher(sub).encrypt(nonce, plain, AD_KEY_FILE)
    doc = {
        "aead": aead,
        "data": base64.b64encode(data).decode(),
        "kdf": {
            "algorithm": "argon2id",
            "iterations": iterations,
            "lanes": lanes,
            "memory_kib": memory_kib,
            "salt": base64.b64encode(salt).decode(),
        },
        "version": 1,
    }
    return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"
