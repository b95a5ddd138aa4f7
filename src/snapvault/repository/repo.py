"""The repository handle."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from snapvault.errors import (
    AmbiguousSnapshot,
    ConfigError,
    IntegrityError,
    ObjectNotFound,
    PolicyNotFound,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongPassword,
)
from snapvault.pipeline.blob import open_blob
from snapvault.pipeline.chunker import ChunkerParams
from snapvault.pipeline.codecs import Codec, Zstd
from snapvault.pipeline.crypto import AEADSealer, PlainSealer, make_sealer
from snapvault.pipeline.ids import BlobType, object_hash
from snapvault.pipeline.index import INDEX_AD, BlobLocation, Index, decode_index, encode_index
from snapvault.pipeline.pack import PackEntry
from snapvault.pipeline.tree import Node, decode_tree
from snapvault.repository.config import (
    KdfParams,
    MasterKeys,
    RepoConfig,
    open_key_file,
    open_plain_key_file,
    plain_key_file,
    seal_key_file,
)
from snapvault.repository.manifest import Manifest
from snapvault.storage import Store, open_store

if TYPE_CHECKING:
    import fsspec

    from snapvault.maintenance.check import CheckReport
    from snapvault.maintenance.copy import CopyResult
    from snapvault.policy.model import Policy
    from snapvault.policy.records import BrokenPolicy

__all__ = ["Repository"]

SNAPSHOT_AD = b"snapvault snapshot"
QUARANTINE_AD = b"snapvault quarantine"
CONFIG_KEY = "config"


def pack_key(pack_id: bytes | str) -> str:
    """Store key of a pack."""
    h = pack_id.hex() if isinstance(pack_id, bytes) else pack_id
    return f"data/{h[:2]}/{h}"


def get_named(store: Store, key: str) -> bytes:
    """Fetch a content-named object and check that its bytes hash to its name."""
    data = store.get(key)
    if object_hash(data).hex() != key.rsplit("/", 1)[-1]:
        raise IntegrityError(f"{key} does not match its name (damaged or altered)", key=key)
    return data


def _password_bytes(password: str | bytes) -> bytes:
    return password.encode() if isinstance(password, str) else password


class Repository:
    """An open snapvault repository.

    Use :meth:`init` to create one and :meth:`open` to open one; do not call the constructor.
    A handle is safe to share between threads.
    """

    def __init__(
        self,
        store: Store,
        config: RepoConfig,
        keys: MasterKeys,
        *,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.store = store
        self.config = config
        self.keys = keys
        self.random = random
        self.sealer: AEADSealer | PlainSealer = make_sealer(config.encryption, keys.encryption_key)
        self.chunker = ChunkerParams.from_dict(config.chunker.to_dict(), seed=keys.chunker_seed)
        self._index: Index | None = None
        self._index_files: set[str] = set()
        self._lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        location: str,
        password: str | bytes | None = None,
        *,
        fs: fsspec.AbstractFileSystem | None = None,
        storage_options: dict[str, Any] | None = None,
        encryption: str = "aes-256-gcm",
        compression: Codec | None = None,
        chunker: ChunkerParams | None = None,
        pack_size: int = 16 << 20,
        kdf: KdfParams | None = None,
        copy_params_from: Repository | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> Repository:
        """Create a repository at ``location`` and return it open.

        Parameters
        ----------
        location : str
            An fsspec URL (``"backups/vault"``, ``"s3://bucket/prefix"``), or a path in ``fs``.
        password : str or bytes or None
            Required unless ``encryption="none"``.
        fs : fsspec.AbstractFileSystem, optional
            A filesystem instance; then ``storage_options`` must be empty.
        storage_options : dict, optional
            Passed to fsspec for ``location``.
        encryption : {"aes-256-gcm", "chacha20-poly1305", "none"}
            ``"none"`` must be asked for explicitly and gives an unencrypted repository.
        compression : Codec, optional
            Default ``Zstd(level=3)``.
        chunker : ChunkerParams, optional
            Chunk size bounds; the seed is always drawn at random (or copied).
        pack_size : int
            Target pack size in bytes.
        kdf : KdfParams, optional
            Argon2id cost of the key file.
        copy_params_from : Repository, optional
            Copy the chunker parameters, chunker seed and content-ID key of this open
            repository, so that the two deduplicate the same data the same way.
        random : callable
            Source of random bytes.

        Raises
        ------
        RepositoryExists
            If a repository (or any config file) exists there already.
        ConfigError
            On a missing password or an invalid option.
        """
        if encryption != "none" and password is None:
            raise ConfigError("a password is required; pass encryption='none' for an unencrypted repository")
        if encryption == "none" and password is not None:
            raise ConfigError("an unencrypted repository takes no password")
        store = open_store(location, fs=fs, storage_options=storage_options)
        if store.exists(CONFIG_KEY):
            raise RepositoryExists(f"a repository already exists at {store.url}")
        params = chunker or ChunkerParams()
        if copy_params_from is not None:
            params = copy_params_from.chunker
            id_key = copy_params_from.keys.id_key
            seed = copy_params_from.keys.chunker_seed
        else:
            id_key = random(32)
            seed = int.from_bytes(random(8), "little") >> 1
        config = RepoConfig(
            repository_id=random(32).hex(),
            encryption=encryption,
            chunker=ChunkerParams.from_dict(params.to_dict()),
            compression=compression or Zstd(),
            pack_size=pack_size,
        )
        config_bytes = config.to_bytes()
        keys = MasterKeys(random(32), id_key, seed, object_hash(config_bytes))
        if password is None:
            kf = plain_key_file(keys)
            store.put_if_absent(f"keys/{object_hash(kf).hex()}", kf)
        else:
            kf = seal_key_file(
                keys,
                _password_bytes(password),
                kdf or KdfParams(),
                salt=random(16),
                random=random(28),
                aead="chacha20-poly1305" if encryption == "chacha20-poly1305" else "aes-256-gcm",
            )
            store.put_if_absent(f"keys/{object_hash(kf).hex()}", kf)
        # The config goes last: a repository exists once its config does.
        if not store.put_if_absent(CONFIG_KEY, config_bytes):
            raise RepositoryExists(f"a repository already exists at {store.url}")
        return cls(store, config, keys, random=random)

    @classmethod
    def open(
        cls,
        location: str,
        password: str | bytes | None = None,
        *,
        fs: fsspec.AbstractFileSystem | None = None,
        storage_options: dict[str, Any] | None = None,
        store: Store | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> Repository:
        """Open the repository at ``location``.

        Parameters
        ----------
        location, fs, storage_options
            As for :meth:`init`.
        password : str or bytes or None
            None only for an unencrypted repository.
        store : Store, optional
            Use this store (for example a wrapped one) instead of opening ``location``.

        Raises
        ------
        RepositoryNotFound
            If there is no repository at ``location``.
        WrongPassword
            If no key file opens with the password.
        """
        if store is None:
            store = open_store(location, fs=fs, storage_options=storage_options)
        try:
            config_bytes = store.get(CONFIG_KEY)
        except ObjectNotFound:
            raise RepositoryNotFound(f"no snapvault repository at {store.url}") from None
        config = RepoConfig.from_bytes(config_bytes)
        if config.encryption == "none":
            if password is not None:
                # Refuse rather than silently write plaintext into what the caller believes
                # is an encrypted repository (a swapped config could otherwise downgrade it).
                raise WrongPassword(f"the repository at {store.url} is NOT encrypted; open it without a password")
            keys = open_plain_key_file(cls._key_files(store)[0][1])
        else:
            if password is None:
                raise WrongPassword("this repository is encrypted; a password is required")
            keys = cls._unlock(store, _password_bytes(password))
        keys.check_config(config_bytes)
        return cls(store, config, keys, random=random)

    @staticmethod
    def _key_files(store: Store) -> list[tuple[str, bytes]]:
        """Every key file, verified against its name."""
        names = sorted(e.key for e in store.list("keys"))
        if not names:
            raise IntegrityError(f"repository at {store.url} has no key files", key="keys")
        return [(name, get_named(store, name)) for name in names]

    @classmethod
    def _unlock(cls, store: Store, password: bytes) -> MasterKeys:
        for _, data in cls._key_files(store):
            try:
                return open_key_file(data, password)
            except WrongPassword:
                continue
        raise WrongPassword("wrong password: no key file of the repository opens with it")

    @property
    def encrypted(self) -> bool:
        """Whether the repository encrypts its contents."""
        return self.config.encryption != "none"

    @property
    def codec(self) -> Codec:
        """The default compression codec."""
        return self.config.compression

    @property
    def url(self) -> str:
        """Where the repository is."""
        return self.store.url

    # -- sealed files ----------------------------------------------------------------------

    def read_sealed(self, key: str, ad: bytes) -> bytes:
        """Read a sealed, content-named object, verifying its name and authenticity."""
        stored = get_named(self.store, key)
        try:
            return self.sealer.open(stored, ad)
        except IntegrityError as e:
            raise IntegrityError(f"{key}: {e}", key=key) from None

    def write_sealed(self, folder: str, data: bytes, ad: bytes) -> str:
        """Seal ``data`` and store it as ``folder/<hash>``; return the name."""
        stored = self.sealer.seal(data, ad, random=self.random(28))
        name = object_hash(stored).hex()
        self.store.put_if_absent(f"{folder}/{name}", stored)
        return name

    # -- index -----------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        """The blob index, loaded on first use. Quarantined packs are left out."""
        with self._lock:
            if self._index is None:
                self._index = Index(self.quarantined_packs())
                self._load_index_files(self._index)
            return self._index

    def refresh_index(self) -> Index:
        """Load index files written since the index was loaded (by this or other writers)."""
        idx = self.index
        quarantined = self.quarantined_packs()
        with self._lock:
            if quarantined != idx.excluded:
                # A pack was quarantined meanwhile: rebuild without it.
                self._index = idx = Index(quarantined)
                self._index_files = set()
            self._load_index_files(idx)
        return idx

    def quarantined_packs(self) -> frozenset[bytes]:
        """Packs that a failed read-back showed to be damaged; never reused."""
        out: set[bytes] = set()
        for e in self.store.list("quarantine"):
            doc = json.loads(self.read_sealed(e.key, QUARANTINE_AD))
            out.update(bytes.fromhex(h) for h in doc["packs"])
        return frozenset(out)

    def quarantine_packs(self, pack_ids: Iterable[bytes], reason: str) -> None:
        """Record packs as damaged so no later backup deduplicates against them.

        Indexes are create-only, so instead of rewriting them a ``quarantine/<hash>`` record
        lists the packs; the index leaves their blobs out from then on.
        """
        packs = sorted(p.hex() for p in pack_ids)
        if not packs:
            return
        body = json.dumps({"packs": packs, "reason": reason}, sort_keys=True).encode()
        self.write_sealed("quarantine", body, QUARANTINE_AD)
        self._index = None

    def index_files(self) -> list[str]:
        """Keys of every index file."""
        return sorted(e.key for e in self.store.list("index"))

    def _load_index_files(self, idx: Index) -> None:
        for key in self.index_files():
            if key in self._index_files:
                continue
            for pid, entries in self.read_index_file(key):
                idx.add_pack(pid, entries)
            self._index_files.add(key)

    def read_index_file(self, key: str) -> list[tuple[bytes, list[PackEntry]]]:
        """Decode one index file."""
        try:
            return decode_index(self.read_sealed(key, INDEX_AD))
        except IntegrityError as e:
            raise IntegrityError(str(e) if key in str(e) else f"{key}: {e}", key=key) from None

    def write_index(self, packs: Iterable[tuple[bytes, list[PackEntry]]]) -> str:
        """Write one index file for ``packs`` and add them to the loaded index."""
        packs = list(packs)
        key = "index/" + self.write_sealed("index", encode_index(packs), INDEX_AD)
        with self._lock:
            if self._index is not None:
                for pid, entries in packs:
                    self._index.add_pack(pid, entries)
                self._index_files.add(key)
        return key

    def write_pack(self, pack_id: bytes, data: bytes | bytearray) -> None:
        """Store a finished pack (create-only)."""
        self.store.put_if_absent(pack_key(pack_id), data)

    def write_pack_file(self, pack_id: bytes, path: str) -> None:
        """Store a finished pack built in the store's spool folder (the file is consumed)."""
        self.store.put_file_if_absent(pack_key(pack_id), path)

    # -- blobs and trees -------------------------------------------------------------------

    def locate(self, bid: bytes) -> BlobLocation:
        """Return where blob ``bid`` is stored."""
        loc = self.index.get(bid)
        if loc is None:
            raise IntegrityError(f"blob {bid.hex()} is not in the index", blob_id=bid.hex())
        return loc

    def read_blob(self, bid: bytes, btype: BlobType | None = None) -> bytes:
        """Fetch, decrypt and verify one blob."""
        loc = self.locate(bid)
        if btype is not None and loc.type != btype:
            raise IntegrityError(f"blob {bid.hex()} has the wrong type", blob_id=bid.hex())
        key = pack_key(loc.pack_id)
        sealed = self.store.get_range(key, loc.offset, loc.length)
        try:
            return open_blob(self.sealer, self.keys.id_key, loc.type, bid, sealed, loc.raw_length)
        except IntegrityError as e:
            raise IntegrityError(
                f"blob {bid.hex()[:16]} in pack {loc.pack_id.hex()[:16]}: {e}",
                pack_id=loc.pack_id.hex(),
                blob_id=bid.hex(),
                key=key,
            ) from None

    def read_tree(self, tree_id: str) -> list[Node]:
        """Fetch and parse the tree blob with hex ID ``tree_id``."""
        try:
            bid = bytes.fromhex(tree_id)
        except ValueError:
            raise IntegrityError(f"bad tree ID {tree_id!r}") from None
        return decode_tree(self.read_blob(bid, BlobType.TREE))

    # -- snapshots -------------------------------------------------------------------------

    def save_manifest(self, manifest: Manifest) -> Manifest:
        """Write a manifest (the commit point of a backup) and return it with its ID."""
        data = manifest.model_dump_json().encode()
        name = self.write_sealed("snapshots", data, SNAPSHOT_AD)
        return manifest.model_copy(update={"id": name})

    def load_manifest(self, snapshot_id: str) -> Manifest:
        """Load the manifest with this full ID."""
        try:
            data = self.read_sealed(f"snapshots/{snapshot_id}", SNAPSHOT_AD)
        except ObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {snapshot_id}", snapshot_id=snapshot_id) from None
        try:
            m = Manifest.model_validate_json(data)
        except ValueError as e:
            raise IntegrityError(f"snapshot {snapshot_id} does not parse: {e}", snapshot_id=snapshot_id) from None
        return m.model_copy(update={"id": snapshot_id})

    def snapshot_ids(self) -> list[str]:
        """IDs of every snapshot."""
        return sorted(e.key.rsplit("/", 1)[-1] for e in self.store.list("snapshots"))

    def snapshots(self) -> list[Manifest]:
        """Every snapshot's manifest, oldest first."""
        return sorted((self.load_manifest(i) for i in self.snapshot_ids()), key=lambda m: (m.time, m.id))

    def resolve(self, ref: str) -> Manifest:
        """Find a snapshot by full ID, unique prefix of at least 4 hex digits, or ``latest``.

        Raises
        ------
        SnapshotNotFound, AmbiguousSnapshot
        """
        if ref == "latest":
            snaps = self.snapshots()
            if not snaps:
                raise SnapshotNotFound("the repository has no snapshots", snapshot_id=ref)
            return snaps[-1]
        ref = ref.lower()
        if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref):
            raise SnapshotNotFound(
                f"{ref!r} is not a snapshot ID (give 4 or more hex digits, or 'latest')", snapshot_id=ref
            )
        matches = [i for i in self.snapshot_ids() if i.startswith(ref)]
        if not matches:
            raise SnapshotNotFound(f"no snapshot matches {ref}", snapshot_id=ref)
        if len(matches) > 1:
            raise AmbiguousSnapshot(f"{ref} matches {len(matches)} snapshots; give more digits", snapshot_id=ref)
        return self.load_manifest(matches[0])

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot manifest (its data stays until a prune)."""
        self.store.delete(f"snapshots/{snapshot_id}")

    def copy_snapshots(
        self, dst: Repository, snapshots: Iterable[str | Manifest] | None = None, **options: Any
    ) -> CopyResult:
        """Copy snapshots from this repository into ``dst``; see :mod:`snapvault.maintenance.copy`."""
        from snapvault.maintenance.copy import copy_snapshots

        return copy_snapshots(self, dst, snapshots, **options)

    # -- policies and runs ---------------------------------------------------------------

    def save_policy(self, policy: Policy, *, now: datetime | None = None) -> None:
        """Store ``policy`` (encrypted) under its name, replacing an earlier one.

        Raises
        ------
        UnknownStrategy
            If its retention strategy is not registered (:func:`snapvault.register_strategy`)
            or installed as an entry point, so the stored policy could not be read back.
        ConfigError
            If the policy has Python callables as hooks (only shell commands can be stored),
            or its retention strategy would read back as another class or value.
        """
        from snapvault.policy.records import save_policy_record

        save_policy_record(self, policy.name, policy, now or datetime.now(UTC))

    def load_policy(self, name: str) -> Policy:
        """Load the stored policy called ``name``.

        Raises
        ------
        PolicyNotFound
            If there is none.
        UnknownStrategy
            If its retention strategy is not installed or registered here.
        IntegrityError
            If its record is damaged or does not validate.
        """
        from snapvault.policy.records import read_policies

        found = read_policies(self)
        if name in found.policies:
            return found.policies[name]
        for b in found.broken:
            if b.name == name:
                raise b.error
        raise PolicyNotFound(f"no policy named {name!r}", name=name)

    def policies(self) -> dict[str, Policy]:
        """Every stored policy this process can read, by name.

        A record that cannot be read hides no other; :meth:`broken_policies` names it.
        """
        from snapvault.policy.records import read_policies

        return read_policies(self).policies

    def broken_policies(self) -> list[BrokenPolicy]:
        """The stored policy records that cannot be read here, and why.

        A policy whose retention strategy is not installed here, or whose newest record is
        damaged, is listed by name; a record that cannot be decrypted or parsed at all, by key
        only. :meth:`remove_policy` removes a policy listed by name.
        """
        from snapvault.policy.records import read_policies

        return read_policies(self).broken

    def remove_policy(self, name: str, *, now: datetime | None = None) -> None:
        """Remove the stored policy ``name`` (its snapshots stay), also one that cannot be read.

        Raises
        ------
        PolicyNotFound
            If there is none.
        """
        from snapvault.policy.records import read_policies, save_policy_record

        found = read_policies(self)
        if name not in found.policies and all(b.name != name for b in found.broken):
            raise PolicyNotFound(f"no policy named {name!r}", name=name)
        save_policy_record(self, name, None, now or datetime.now(UTC))

    # -- verification ----------------------------------------------------------------------

    def check(
        self,
        read_data: bool = False,
        *,
        read_data_subset: float | None = None,
        seed: int | None = None,
    ) -> CheckReport:
        """Verify the repository; see :func:`snapvault.maintenance.check.check_repository`."""
        from snapvault.maintenance.check import check_repository

        return check_repository(self, read_data=read_data, read_data_subset=read_data_subset, seed=seed)

    def packs(self) -> Iterator[tuple[str, int]]:
        """(hex pack ID, size) of every pack in the store."""
        for e in self.store.list("data"):
            yield e.key.rsplit("/", 1)[-1], e.size

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary of the repository's settings."""
        return {
            "url": self.url,
            "id": self.config.repository_id,
            "encryption": self.config.encryption,
            "chunker": self.config.chunker.to_dict(),
            "compression": self.config.compression.to_dict(),
            "pack_size": self.config.pack_size,
        }
