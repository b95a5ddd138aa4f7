"""The format-level repository: config, keys, packs, indexes, manifests and sealed records.

:class:`Repository` here knows the format and nothing above it. Consumers (the archiver,
restore, maintenance, policies) declare the few methods they use as a ``Protocol`` and take
any object that has them; the public handle ``snapvault.Repository`` (:mod:`snapvault.handle`)
subclasses this class and adds the conveniences that call those layers.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from snapvault.errors import (
    AmbiguousSnapshot,
    AppendOnlyError,
    ConfigError,
    IntegrityError,
    ObjectNotFound,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    SnapvaultError,
    UnsupportedFormat,
    WrongPassword,
)
from snapvault.pipeline.blob import blob_size_error, open_blob, open_frame, seal_blob
from snapvault.pipeline.chunker import ChunkerParams
from snapvault.pipeline.codecs import Codec, Zstd
from snapvault.pipeline.crypto import AEADSealer, PlainSealer, make_sealer
from snapvault.pipeline.ids import BlobType, blob_id, object_hash
from snapvault.pipeline.index import INDEX_AD, MAX_INDEX_ENTRIES, BlobLocation, Index, decode_index, encode_index
from snapvault.pipeline.pack import TRAILER_SIZE, PackEntry, header_length, parse_pack, read_header
from snapvault.pipeline.tree import Node, TreeNodes, decode_tree, iter_tree
from snapvault.repository import layout
from snapvault.repository.config import (
    KDF_MEMORY_LIMIT_KIB,
    KdfParams,
    MasterKeys,
    RepoConfig,
    kdf_cost,
    kdf_memory_kib,
    open_key_file,
    open_plain_key_file,
    plain_key_file,
    seal_key_file,
)
from snapvault.repository.layout import pack_key
from snapvault.repository.lifecycle import DeletionMark, WriterSession, read_marks
from snapvault.repository.manifest import Manifest
from snapvault.storage import Store, open_store

if TYPE_CHECKING:
    import fsspec

__all__ = ["PackBuilder", "Repository"]

SNAPSHOT_AD = b"snapvault snapshot"
QUARANTINE_AD = b"snapvault quarantine"
#: Kept (as is ``pack_key`` here) while callers move to :mod:`snapvault.repository.layout`.
CONFIG_KEY = layout.CONFIG

_T_co = TypeVar("_T_co", covariant=True)
_T = TypeVar("_T")
#: Tree blobs over this many plaintext bytes are held compressed by tree_nodes (see there).
_STREAMED_TREE = 4 << 20


class PackBuilder(Protocol[_T_co]):
    """A pack being built (in memory or in a spool file) that the repository seals and names."""

    def finish(
        self, sealer: AEADSealer | PlainSealer, random: Callable[[int], bytes]
    ) -> tuple[bytes, _T_co, list[PackEntry]]:
        """Seal the header; return ``(pack_id, pack bytes or spool path, entries)``."""
        ...


def get_limited(store: Store, key: str) -> bytes:
    """Fetch a whole object no longer than its kind's limit (:func:`layout.max_size`).

    Raises
    ------
    IntegrityError
        If the object is longer: it is refused after reading one byte past the limit.
    """
    limit = layout.max_size(key)
    if limit is None:
        return store.get(key)
    data = store.get_range(key, 0, limit + 1)
    if len(data) > limit:
        raise IntegrityError(f"{key} is over the format's limit of {limit} bytes for its kind", key=key)
    return data


def get_named(store: Store, key: str) -> bytes:
    """Fetch a content-named object and check that its bytes hash to its name."""
    data = get_limited(store, key)
    if object_hash(data).hex() != layout.name_of(key):
        raise IntegrityError(f"{key} does not match its name (damaged or altered)", key=key)
    return data


def _is_pack_name(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _password_bytes(password: str | bytes) -> bytes:
    return password.encode() if isinstance(password, str) else password


class Repository:
    """An open snapvault repository, at the level of its format.

    Use :meth:`init` to create one and :meth:`open` to open one; do not call the constructor.
    Both return an instance of the class they are called on, so ``snapvault.Repository.open``
    gives the public handle. A repository is safe to share between threads.

    ``store``, ``config``, ``keys`` and ``sealer`` are the format's own parts: code outside
    ``snapvault.repository`` uses the methods below instead.
    """

    def __init__(
        self,
        store: Store,
        config: RepoConfig,
        keys: MasterKeys,
        *,
        random: Callable[[int], bytes] = os.urandom,
        append_only: bool = False,
    ) -> None:
        self.store = store
        #: Whether this handle refuses every delete (forget, prune, key removal).
        self.append_only = append_only
        self.config = config
        #: The master keys (every key file wraps these same keys).
        self.master_keys = keys
        #: The hex name of the key file (``keys/<hex>``) this handle was opened or created with
        #: (None only for a handle built directly).
        self.key_id: str | None = None
        self.random = random
        self.sealer: AEADSealer | PlainSealer = make_sealer(config.encryption, keys.encryption_key, keys.retired_keys)
        self.chunker = ChunkerParams.from_dict(config.chunker.to_dict(), seed=keys.chunker_seed)
        self._index: Index | None = None
        self._index_files: set[str] = set()
        # Decoded index files by key while index_file_cache() is on (None: off).
        self._index_cache: dict[str, list[tuple[bytes, list[PackEntry]]]] | None = None
        self._marks: dict[str, DeletionMark] = {}
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
    ) -> Self:
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
        if store.exists(layout.CONFIG):
            raise RepositoryExists(f"a repository already exists at {store.url}")
        params = chunker or ChunkerParams()
        if copy_params_from is not None:
            params = copy_params_from.chunker
            id_key = copy_params_from.master_keys.id_key
            seed = copy_params_from.master_keys.chunker_seed
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
        else:
            kf = seal_key_file(
                keys,
                _password_bytes(password),
                kdf or KdfParams(),
                salt=random(16),
                random=random(28),
                aead="chacha20-poly1305" if encryption == "chacha20-poly1305" else "aes-256-gcm",
            )
        key_name = layout.object_key(layout.KEYS, object_hash(kf).hex())
        store.put_if_absent(key_name, kf)
        # The config goes last: a repository exists once its config does.
        if not store.put_if_absent(layout.CONFIG, config_bytes):
            raise RepositoryExists(f"a repository already exists at {store.url}")
        repo = cls(store, config, keys, random=random)
        repo.key_id = key_name.rsplit("/", 1)[1]
        return repo

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
        max_kdf_memory_kib: int = KDF_MEMORY_LIMIT_KIB,
        append_only: bool = False,
    ) -> Self:
        """Open the repository at ``location``.

        Parameters
        ----------
        location, fs, storage_options
            As for :meth:`init`.
        password : str or bytes or None
            None only for an unencrypted repository.
        store : Store, optional
            Use this store (for example a wrapped one) instead of opening ``location``.
        max_kdf_memory_kib : int
            Key files whose Argon2 asks for more memory than this (KiB; 128 MiB by default)
            are not tried: someone who can write the storage could otherwise plant one that
            makes every mistyped password cost gigabytes. Raise it to open a repository whose
            key was made with costlier parameters.
        append_only : bool
            Refuse every delete through this handle (``forget``, ``prune``, removing a key):
            for a machine whose credentials must not be able to destroy history. Pair it with
            a store that refuses deletes too (docs/design.md, "Append-only use").

        Raises
        ------
        RepositoryNotFound
            If there is no repository at ``location``.
        WrongPassword
            If no key file opens with the password (the message counts key files skipped as
            over ``max_kdf_memory_kib``).
        UnsupportedFormat
            If the only key files are over ``max_kdf_memory_kib`` (or otherwise unusable).
        """
        if store is None:
            store = open_store(location, fs=fs, storage_options=storage_options)
        try:
            config_bytes = get_limited(store, layout.CONFIG)
        except ObjectNotFound:
            raise RepositoryNotFound(f"no snapvault repository at {store.url}") from None
        config = RepoConfig.from_bytes(config_bytes)
        if config.encryption == "none":
            if password is not None:
                # Refuse rather than silently write plaintext into what the caller believes
                # is an encrypted repository (a swapped config could otherwise downgrade it).
                raise WrongPassword(f"the repository at {store.url} is NOT encrypted; open it without a password")
            name, data = cls._key_files(store)[0]
            try:
                keys = open_plain_key_file(data)
            except IntegrityError as e:
                raise (e if name in str(e) else IntegrityError(f"{name}: {e}", key=name)) from None
        else:
            if password is None:
                raise WrongPassword("this repository is encrypted; a password is required")
            name, keys = cls._unlock(store, _password_bytes(password), max_kdf_memory_kib)
        keys.check_config(config_bytes)
        repo = cls(store, config, keys, random=random, append_only=append_only)
        repo.key_id = name.rsplit("/", 1)[1]
        return repo

    @staticmethod
    def _key_files(store: Store) -> list[tuple[str, bytes]]:
        """Every key file, verified against its name."""
        names = sorted(e.key for e in store.list(layout.KEYS))
        if not names:
            raise IntegrityError(f"repository at {store.url} has no key files", key=layout.KEYS)
        return [(name, get_named(store, name)) for name in names]

    @classmethod
    def _unlock(cls, store: Store, password: bytes, max_kdf_memory_kib: int) -> tuple[str, MasterKeys]:
        # Every key file is tried until one opens: a stray or damaged one (junk, over its
        # limit, not matching its name, an unknown KDF) locks no one out. Cheapest key
        # derivation first, so a key file planted with costly parameters is derived only when
        # no other opens.
        names = sorted(e.key for e in store.list(layout.KEYS))
        if not names:
            raise IntegrityError(f"repository at {store.url} has no key files", key=layout.KEYS)
        readable: list[tuple[str, bytes]] = []
        failures: list[SnapvaultError] = []
        for name in names:
            try:
                readable.append((name, get_named(store, name)))
            except IntegrityError as e:
                failures.append(e)
        wrong = False
        costly: list[SnapvaultError] = []
        for name, data in sorted(readable, key=lambda kf: kdf_cost(kf[1])):
            memory = kdf_memory_kib(data)
            if memory > max_kdf_memory_kib:
                costly.append(
                    UnsupportedFormat(
                        f"{name}: key file asks for {memory / 1024:g} MiB of Argon2 memory, over this reader's "
                        f"limit of {max_kdf_memory_kib / 1024:g} MiB "
                        "(raise max_kdf_memory_kib, or --max-kdf-memory, to try it)"
                    )
                )
                continue
            try:
                return name, open_key_file(data, password)
            except WrongPassword:
                wrong = True
            except IntegrityError as e:
                failures.append(e if name in str(e) else IntegrityError(f"{name}: {e}", key=name))
            except UnsupportedFormat as e:
                failures.append(e if name in str(e) else UnsupportedFormat(f"{name}: {e}"))
        if wrong or not (failures or costly):
            skipped = (
                f"; {len(costly)} key file(s) over the Argon2 memory limit of {max_kdf_memory_kib / 1024:g} MiB "
                f"were not tried (raise max_kdf_memory_kib, or --max-kdf-memory, to try them)"
                if costly
                else ""
            )
            raise WrongPassword(f"wrong password: no key file of the repository opens with it{skipped}")
        # Likeliest the user's own key, made with costlier parameters than this reader allows.
        raise (costly or failures)[0]

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

    @property
    def pack_size(self) -> int:
        """Target size of a pack in bytes."""
        return self.config.pack_size

    @property
    def spool_dir(self) -> str | None:
        """A local folder where packs can be built in files and linked into place, if the store has one."""
        return self.store.capabilities.spool_dir

    @property
    def content_id_fingerprint(self) -> bytes:
        """A digest of the content-ID key, safe to compare and to show.

        Two repositories with equal fingerprints give the same data the same blob IDs
        (``Repository.init(..., copy_params_from=...)``), so blobs and trees move between them
        as they are.
        """
        return object_hash(b"snapvault content-id fingerprint\0" + self.master_keys.id_key)

    # -- objects by key --------------------------------------------------------------------

    def list_keys(self, folder: str) -> list[str]:
        """Keys of every object in ``folder`` (one of :data:`~snapvault.repository.layout.FOLDERS`), sorted."""
        return sorted(e.key for e in self.store.list(folder))

    def read_named(self, key: str) -> bytes:
        """The stored bytes of a content-named object, checked against its name.

        Raises
        ------
        IntegrityError
            If the bytes do not hash to the name.
        """
        return get_named(self.store, key)

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
        self.store.put_if_absent(layout.object_key(folder, name), stored)
        return name

    # -- index -----------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        """The blob index, loaded on first use. Quarantined packs are left out; packs a prune
        has marked for deletion are avoided (:attr:`Index.avoid`)."""
        with self._lock:
            if self._index is None:
                self._index = Index(self.quarantined_packs(), self._marked_packs())
                # Every file again: the one dropped (quarantine_packs) had loaded them.
                self._index_files = set()
                self._load_index_files(self._index)
            return self._index

    def refresh_index(self) -> Index:
        """Load index files written since the index was loaded (by this or other writers);
        rebuild it when one it loaded is gone (a prune or a repair replaced it)."""
        idx = self.index
        quarantined = self.quarantined_packs()
        marked = self._marked_packs()
        listed = set(self.index_files())
        with self._lock:
            if quarantined != idx.excluded or marked != idx.avoid or not self._index_files <= listed:
                # A pack was quarantined or marked, or a mark carried out, meanwhile: rebuild.
                self._index = idx = Index(quarantined, marked)
                self._index_files = set()
            self._load_index_files(idx, listed)
        return idx

    def deletion_marks(self, unreadable: list[IntegrityError] | None = None) -> dict[str, DeletionMark]:
        """Every pending deletion mark of a prune, by name (see :mod:`snapvault.repository.lifecycle`);
        marks that cannot be read are left out (and added to ``unreadable``)."""
        marks = read_marks(self, self._marks, unreadable)
        self._marks = marks
        return marks

    def _marked_packs(self) -> frozenset[bytes]:
        return frozenset().union(*(m.packs for m in self.deletion_marks().values()))

    def writer_session(
        self, *, writer_id: str | None = None, host: str = "", clock: Callable[[], datetime] | None = None
    ) -> WriterSession:
        """Announce a writer, then load the index as it stands: use as a context manager around
        everything from deduplicating to committing (backups, copies and repairs do).

        ``clock`` gives the wall-clock times written into the writer's records (the machine's
        clock by default); a prune compares them with its own ``now`` to tell a crashed writer
        from a running one.
        """
        session = WriterSession(
            self,
            writer_id=writer_id or self.random(16).hex(),
            host=host,
            clock=clock or (lambda: datetime.now(UTC)),
        )
        session.start()
        try:
            # Marks are listed after the announcement: a prune that marks later sees this
            # writer and waits for it; one that marked earlier is in what this writer saw.
            marks = self.deletion_marks()
            self.refresh_index()
            session.saw(marks)
        except BaseException:
            session.close()
            raise
        return session

    def use_master_keys(self, keys: MasterKeys, key_id: str) -> None:
        """Switch this handle to ``keys`` (a rotation's): new objects are sealed with its key."""
        if keys.id_key != self.master_keys.id_key or keys.chunker_seed != self.master_keys.chunker_seed:
            raise ConfigError("a rotation keeps the content parameters (id_key, chunker_seed)")
        self.master_keys = keys
        self.sealer = make_sealer(self.config.encryption, keys.encryption_key, keys.retired_keys)
        self.key_id = key_id

    def delete_key(self, key: str) -> None:
        """Delete one object (a missing one is fine).

        Raises
        ------
        AppendOnlyError
            If this handle is append-only.
        """
        self._refuse_delete(f"{key} is not deleted")
        with contextlib.suppress(ObjectNotFound):
            self.store.delete(key)

    def quarantined_packs(self) -> frozenset[bytes]:
        """Packs that a failed read-back showed to be damaged; never reused."""
        out: set[bytes] = set()
        for key in self.list_keys(layout.QUARANTINE):
            data = self.read_sealed(key, QUARANTINE_AD)
            try:
                packs = json.loads(data)["packs"]
                out.update(bytes.fromhex(h) for h in packs)
            except (ValueError, TypeError, KeyError, RecursionError) as e:
                raise IntegrityError(f"{key}: quarantine record is malformed: {e!r}", key=key) from None
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
        self.write_sealed(layout.QUARANTINE, body, QUARANTINE_AD)
        self._index = None

    def index_files(self) -> list[str]:
        """Keys of every index file."""
        return self.list_keys(layout.INDEX)

    def _load_index_files(self, idx: Index, listed: Iterable[str] | None = None) -> None:
        keys = sorted(listed) if listed is not None else self.index_files()
        # A prune (or a repair) writes an index file's replacement before it deletes it: one
        # that vanished between the listing and the read is in a file a new listing shows.
        for _ in range(8):
            vanished = False
            for key in keys:
                if key in self._index_files:
                    continue
                try:
                    packs = self.read_index_file(key)
                except ObjectNotFound:
                    vanished = True
                    continue
                for pid, entries in packs:
                    idx.add_pack(pid, entries)
                self._index_files.add(key)
            if not vanished:
                return
            keys = self.index_files()

    def read_index_file(self, key: str) -> list[tuple[bytes, list[PackEntry]]]:
        """Decode one index file (kept while :meth:`index_file_cache` is on)."""
        cache = self._index_cache
        if cache is not None and key in cache:
            return cache[key]
        try:
            packs = decode_index(self.read_sealed(key, INDEX_AD))
        except IntegrityError as e:
            raise IntegrityError(str(e) if key in str(e) else f"{key}: {e}", key=key) from None
        if cache is not None:
            cache[key] = packs
        return packs

    @contextlib.contextmanager
    def index_file_cache(self) -> Iterator[None]:
        """Keep every index file decoded inside the block, for reuse.

        A prune reads each index file several times (to load the index, to survey the packs,
        and to rebuild the index each time the set of marked packs changes). Index files are
        create-only and named by their content's hash, so a key always decodes the same; the
        cost is the decoded entries' memory for the block's duration, which is why it is not
        always on.
        """
        outer = self._index_cache
        if outer is None:
            self._index_cache = {}
        try:
            yield
        finally:
            if outer is None:
                self._index_cache = None

    def write_index(self, packs: Iterable[tuple[bytes, list[PackEntry]]]) -> str:
        """Write index files for ``packs`` and add them to the loaded index; return the last
        file's key.

        One file holds at most :data:`MAX_INDEX_ENTRIES` blobs (more packs than fit go to
        further files), which keeps every file under the format's decompressed-size limit, and
        lists each blob once.
        """
        key = ""
        batch: list[tuple[bytes, list[PackEntry]]] = []
        count = 0
        ids: set[bytes] = set()
        for pid, entries in packs:
            # A blob may be listed once per file (docs/format.md): a pack holding a blob that
            # another pack of this file holds too (a prune's merge meets such copies) starts
            # the next file.
            if batch and (count + len(entries) > MAX_INDEX_ENTRIES or any(e.id in ids for e in entries)):
                key = self._write_index_file(batch)
                batch, count = [], 0
                ids.clear()
            batch.append((pid, entries))
            count += len(entries)
            ids.update(e.id for e in entries)
        if batch or not key:
            key = self._write_index_file(batch)
        return key

    def _write_index_file(self, packs: list[tuple[bytes, list[PackEntry]]]) -> str:
        key = layout.object_key(layout.INDEX, self.write_sealed(layout.INDEX, encode_index(packs), INDEX_AD))
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

    def finish_pack(self, packer: PackBuilder[_T]) -> tuple[bytes, _T, list[PackEntry]]:
        """Seal the header of a pack being built with this repository's key; see :class:`PackBuilder`."""
        return packer.finish(self.sealer, self.random)

    def packs(self) -> Iterator[tuple[str, int]]:
        """(hex pack ID, size) of every pack in the store (objects under ``data/`` whose name
        is not a pack ID are not packs: see :meth:`stray_objects`)."""
        for e in self.store.list(layout.DATA):
            name = layout.name_of(e.key)
            if _is_pack_name(name):
                yield name, e.size

    def temporaries(self) -> list[tuple[str, float]]:
        """``(key, mtime)`` of the ``.tmp-*`` files writers left when killed (empty when the
        store cannot list them); only a prune deletes them, once they are old."""
        lister = getattr(self.store, "temporaries", None)
        return [] if lister is None else list(lister(""))

    def stray_objects(self) -> list[str]:
        """Keys under ``data/`` that are not named like packs (nothing writes them)."""
        return [e.key for e in self.store.list(layout.DATA) if not _is_pack_name(layout.name_of(e.key))]

    def read_pack(self, pack_id: bytes | str) -> bytes:
        """The whole stored pack (its ID, or its hex name); not checked against its name."""
        return self.store.get(pack_key(pack_id))

    def read_pack_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        """``length`` bytes of a pack from ``offset`` (fewer at its end)."""
        return self.store.get_range(pack_key(pack_id), offset, length)

    def read_pack_header(
        self, pack_id: bytes, size: int, sealer: AEADSealer | PlainSealer | None = None
    ) -> list[PackEntry]:
        """Read, open and parse the header of a stored pack of ``size`` bytes: two ranged
        reads (the trailer, then the header), the header's length checked against the format's
        limit before it is read.

        Raises
        ------
        IntegrityError
            If the header is damaged, over its limit, or does not authenticate.
        """
        tail = self.read_pack_range(pack_id, max(0, size - TRAILER_SIZE), TRAILER_SIZE)
        hlen = header_length(tail, size)
        start = size - TRAILER_SIZE - hlen
        return read_header(sealer or self.sealer, self.read_pack_range(pack_id, start, hlen + TRAILER_SIZE), size)

    def pack_header(self, data: bytes | memoryview) -> list[PackEntry]:
        """Open and parse the header of a whole pack held in memory.

        Raises
        ------
        IntegrityError
            If the header is damaged or does not authenticate.
        """
        return parse_pack(self.sealer, data)

    # -- blobs and trees -------------------------------------------------------------------

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """The ID this repository gives a blob with plaintext ``data`` (keyed, so not guessable)."""
        return blob_id(self.master_keys.id_key, data)

    def seal_blob(self, btype: BlobType, bid: bytes, data: bytes | memoryview, codec: Codec | None = None) -> bytearray:
        """Compress ``data`` with ``codec`` (default :attr:`codec`) and seal it as blob ``bid``."""
        return seal_blob(self.sealer, codec or self.codec, btype, bid, data, self.random(28))

    def open_blob(
        self, btype: BlobType, bid: bytes, sealed: bytes | memoryview, raw_length: int | None = None
    ) -> bytes:
        """Unseal, decompress and verify a sealed blob read from a pack.

        Raises
        ------
        IntegrityError
            If it does not authenticate, decode to ``raw_length`` bytes, or hash to ``bid``.
        """
        return open_blob(self.sealer, self.master_keys.id_key, btype, bid, sealed, raw_length)

    def locate(self, bid: bytes) -> BlobLocation:
        """Return where blob ``bid`` is stored."""
        loc = self.index.get(bid)
        if loc is None:
            raise IntegrityError(f"blob {bid.hex()} is not in the index", blob_id=bid.hex())
        error = blob_size_error(loc.type, loc.length, loc.raw_length)
        if error is not None:
            # Refused before anything is fetched: the index alone makes this blob unusable.
            raise IntegrityError(
                f"blob {bid.hex()[:16]} in pack {loc.pack_id.hex()[:16]}: {error}",
                blob_id=bid.hex(),
                pack_id=loc.pack_id.hex(),
            )
        return loc

    def read_blob(self, bid: bytes, btype: BlobType | None = None) -> bytes:
        """Fetch, decrypt and verify one blob."""
        loc = self._locate_typed(bid, btype)
        return self._fetch(bid, loc, lambda sealed: self.open_blob(loc.type, bid, sealed, loc.raw_length))

    def _locate_typed(self, bid: bytes, btype: BlobType | None) -> BlobLocation:
        loc = self.locate(bid)
        if btype is not None and loc.type != btype:
            raise IntegrityError(f"blob {bid.hex()} has the wrong type", blob_id=bid.hex())
        return loc

    def _fetch(self, bid: bytes, loc: BlobLocation, open_: Callable[[bytes], _T]) -> _T:
        """Read a located blob's sealed bytes and open them with ``open_``; an
        :class:`IntegrityError` names the blob, its pack and the pack's key."""
        key = pack_key(loc.pack_id)
        sealed = self.store.get_range(key, loc.offset, loc.length)
        try:
            return open_(sealed)
        except IntegrityError as e:
            raise IntegrityError(
                f"blob {bid.hex()[:16]} in pack {loc.pack_id.hex()[:16]}: {e}",
                pack_id=loc.pack_id.hex(),
                blob_id=bid.hex(),
                key=key,
            ) from None

    def read_tree(self, tree_id: str) -> list[Node]:
        """Fetch and parse the tree blob with hex ID ``tree_id``."""
        return decode_tree(self.read_blob(_tree_bid(tree_id), BlobType.TREE))

    def tree_nodes(self, tree_id: str) -> TreeNodes:
        """Fetch a tree blob as :class:`~snapvault.pipeline.tree.TreeNodes`: its nodes parsed
        one at a time on each iteration (how a backup reads its parent). A tree of more than
        4 MiB (about 15,000 entries) is held compressed and decompressed as it is iterated;
        a smaller one as its text."""
        bid = _tree_bid(tree_id)
        loc = self._locate_typed(bid, BlobType.TREE)
        if loc.raw_length <= _STREAMED_TREE:
            return TreeNodes(
                self._fetch(bid, loc, lambda sealed: self.open_blob(loc.type, bid, sealed, loc.raw_length))
            )
        id_key = self.master_keys.id_key
        frame = self._fetch(
            bid, loc, lambda sealed: open_frame(self.sealer, id_key, loc.type, bid, sealed, loc.raw_length)
        )
        return TreeNodes.streamed(frame, loc.raw_length)

    def iter_tree(self, tree_id: str) -> Iterator[Node]:
        """Fetch a tree blob and walk its nodes one at a time (see :func:`~snapvault.pipeline.tree.iter_tree`).

        The blob is read and its framing checked before this returns; a damaged node raises
        from the iteration.
        """
        return iter_tree(self.read_blob(_tree_bid(tree_id), BlobType.TREE))

    # -- snapshots -------------------------------------------------------------------------

    def save_manifest(self, manifest: Manifest) -> Manifest:
        """Write a manifest (the commit point of a backup) and return it with its ID."""
        data = manifest.model_dump_json().encode()
        name = self.write_sealed(layout.SNAPSHOTS, data, SNAPSHOT_AD)
        return manifest.model_copy(update={"id": name})

    def load_manifest(self, snapshot_id: str) -> Manifest:
        """Load the manifest with this full ID."""
        try:
            data = self.read_sealed(layout.snapshot_key(snapshot_id), SNAPSHOT_AD)
        except ObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {snapshot_id}", snapshot_id=snapshot_id) from None
        try:
            m = Manifest.model_validate_json(data)
        except ValueError as e:
            raise IntegrityError(f"snapshot {snapshot_id} does not parse: {e}", snapshot_id=snapshot_id) from None
        return m.model_copy(update={"id": snapshot_id})

    def snapshot_ids(self) -> list[str]:
        """IDs of every snapshot."""
        return [layout.name_of(key) for key in self.list_keys(layout.SNAPSHOTS)]

    def snapshots(self) -> list[Manifest]:
        """Every readable snapshot's manifest, oldest first.

        A manifest this repository's keys cannot open or parse (one copied from another
        repository, stray bytes under ``snapshots/``) hides no other: it is left out here and
        named by :meth:`unreadable_snapshots`; ``check`` reports it as a problem.
        """
        return self._scan_snapshots()[0]

    def unreadable_snapshots(self) -> list[tuple[str, IntegrityError]]:
        """The snapshot objects :meth:`snapshots` leaves out, as (ID, why), by ID."""
        return self._scan_snapshots()[1]

    def scan_snapshots(self) -> tuple[list[Manifest], list[tuple[str, IntegrityError]]]:
        """Every snapshot, read once: the readable ones (oldest first) and the unreadable ones
        with why (:meth:`snapshots` and :meth:`unreadable_snapshots` in one pass)."""
        return self._scan_snapshots()

    def _scan_snapshots(self) -> tuple[list[Manifest], list[tuple[str, IntegrityError]]]:
        readable, unreadable = [], []
        for sid in self.snapshot_ids():
            try:
                readable.append(self.load_manifest(sid))
            except SnapshotNotFound:
                continue  # removed since it was listed (a concurrent forget): not a problem
            except IntegrityError as e:
                unreadable.append((sid, e))
        return sorted(readable, key=lambda m: (m.time, m.id)), unreadable

    def resolve(self, ref: str) -> Manifest:
        """Find a snapshot by full ID, unique prefix of at least 4 hex digits, or ``latest``
        (the newest readable one).

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
            # An unreadable manifest is no candidate (it would make every lookup of a
            # readable one sharing its prefix ambiguous); a lone match is loaded and, if
            # unreadable, reported as such.
            readable = {m.id: m for m in self.snapshots()}
            usable = [i for i in matches if i in readable]
            if len(usable) == 1:
                return readable[usable[0]]
            raise AmbiguousSnapshot(f"{ref} matches {len(matches)} snapshots; give more digits", snapshot_id=ref)
        return self.load_manifest(matches[0])

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot manifest (its data stays until a prune).

        Raises
        ------
        AppendOnlyError
            If this handle is append-only.
        """
        self._refuse_delete("snapshots are never forgotten")
        self.store.delete(layout.snapshot_key(snapshot_id))

    def _refuse_delete(self, what: str) -> None:
        if self.append_only:
            raise AppendOnlyError(f"the repository at {self.url} is opened append-only: {what}")

    # -- about -----------------------------------------------------------------------------

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


def _tree_bid(tree_id: str) -> bytes:
    """The blob ID of a tree given in hex, or IntegrityError."""
    try:
        return bytes.fromhex(tree_id)
    except ValueError:
        raise IntegrityError(f"bad tree ID {tree_id!r}") from None
