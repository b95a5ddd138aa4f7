"""Repack: move the live blobs of chosen packs into new packs, sealed bytes as they are.

A pack of up to :data:`WHOLE_PACK` bytes (every pack of a repository at the default pack size)
is read once, whole, in one request; a larger one (a repository made with a larger
``pack_size``, or a hostile one) by its header and then ranges of at most :data:`SPAN` bytes
that cover the blobs to copy, so no pack is ever held whole whatever its size. Each live blob
is authenticated (its type and ID are bound into its sealing, so this proves it is the blob it
claims to be) and appended to a new pack without being decompressed or compressed again. A
blob a retired key sealed (a key rotation's rewrite) is opened and sealed again with the
current key.

The reads, the copying and the writes overlap: the next pack is read and the last finished
one written (and fsynced) by two I/O threads while this thread copies blobs, so the run takes
about as long as its slowest part rather than the sum of the three. At most one pack is read
ahead and one written behind, so memory stays at four packs (the one being read, the one being
copied from, the one being filled, the one being written). The index file naming the new packs
is written only after every one of them is stored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple, Protocol

from snapvault.archiver.sink import SinkRepository
from snapvault.errors import IntegrityError
from snapvault.pipeline.crypto import AEADSealer, PlainSealer
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.pack import MAX_PACK_BLOBS, PackEntry, PackWriter, blob_ad

__all__ = ["SPAN", "WHOLE_PACK", "RepackRepository", "repack_packs"]

#: Packs up to this many bytes are read whole; larger ones by ranges.
WHOLE_PACK = 32 << 20
#: Most bytes one ranged read of a larger pack covers (more only for a single larger blob).
SPAN = 8 << 20


class RepackRepository(SinkRepository, Protocol):
    """What a repack needs of a repository beyond a sink's: whole packs and their headers."""

    @property
    def sealer(self) -> AEADSealer | PlainSealer:
        """The sealer of new objects (with any retired keys to open old ones)."""
        ...

    def read_pack_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        """``length`` bytes of a pack from ``offset`` (fewer at its end)."""
        ...

    def read_pack_header(self, pack_id: bytes, size: int) -> list[PackEntry]:
        """The authenticated header of a stored pack of ``size`` bytes, read by ranges."""
        ...

    def pack_header(self, data: bytes | memoryview) -> list[PackEntry]:
        """The authenticated header of a whole pack held in memory."""
        ...

    def random(self, n: int) -> bytes:
        """``n`` fresh random bytes."""
        ...


class _Loaded(NamedTuple):
    """A pack's authenticated header, and the pack itself when it was read whole."""

    entries: list[PackEntry]
    data: bytes | None


def _load(repo: RepackRepository, pid: bytes, size: int) -> _Loaded:
    """Read a pack (in an I/O thread): whole up to :data:`WHOLE_PACK`, else its header only."""
    if size <= WHOLE_PACK:
        data = repo.read_pack_range(pid, 0, size)
        return _Loaded(repo.pack_header(memoryview(data)), data)
    return _Loaded(repo.read_pack_header(pid, size), None)


def _sealed_blobs(
    repo: RepackRepository, pid: bytes, wanted: list[PackEntry], data: bytes | None
) -> Iterator[tuple[PackEntry, memoryview]]:
    """Each entry of ``wanted`` with its sealed bytes: sliced from the whole pack, or read by
    ranges of at most :data:`SPAN` bytes (each as many neighbouring blobs as fit)."""
    if data is not None:
        view = memoryview(data)
        for e in wanted:
            yield e, view[e.offset : e.offset + e.length]
        return
    ordered = sorted(wanted, key=lambda e: e.offset)
    i = 0
    while i < len(ordered):
        start = ordered[i].offset
        end = start + ordered[i].length
        j = i + 1
        while j < len(ordered) and ordered[j].offset + ordered[j].length - start <= SPAN:
            end = max(end, ordered[j].offset + ordered[j].length)
            j += 1
        span = repo.read_pack_range(pid, start, end - start)
        if len(span) != end - start:
            raise IntegrityError(f"pack {pid.hex()} is shorter than its header says")
        view = memoryview(span)
        for e in ordered[i:j]:
            yield e, view[e.offset - start : e.offset - start + e.length]
        i = j


def repack_packs(
    repo: RepackRepository,
    packs: Mapping[bytes, int],
    keep: Callable[[PackEntry], bool],
    progress: Callable[[bytes], None] = lambda pid: None,
) -> tuple[int, int]:
    """Copy the blobs of ``packs`` (pack ID to stored size) that ``keep`` accepts into new
    packs; index them.

    Each blob ID is copied once, whichever pack it is found in first. ``progress`` is called
    with each pack's ID once it has been read. Returns ``(blobs copied, sealed bytes copied)``.

    Raises
    ------
    IntegrityError
        If a pack's header or a blob to copy fails authentication (nothing is indexed then:
        the packs already written are unindexed, and the next prune removes them).
    """
    order = sorted(packs)
    if not order:
        return 0, 0
    sealer = repo.sealer
    current = sealer.current_only() if isinstance(sealer, AEADSealer) else sealer
    open_packs: dict[BlobType, PackWriter] = {}
    landed: list[tuple[bytes, list[PackEntry]]] = []
    copied: set[bytes] = set()
    moved = 0
    scratch = bytearray()
    # One thread reads ahead and one writes behind; both release the GIL in their syscalls.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="repack") as io:
        writes: deque[Future[tuple[bytes, list[PackEntry]]]] = deque()
        ahead: Future[_Loaded] | None = None

        def store(packer: PackWriter) -> tuple[bytes, list[PackEntry]]:
            # In the writing thread: hashing the pack for its name and sealing its header
            # release the GIL as the write does.
            pid, data, entries = repo.finish_pack(packer)
            repo.write_pack(pid, data)
            return pid, entries

        def finish(btype: BlobType) -> None:
            packer = open_packs.pop(btype, None)
            if packer is not None and len(packer):
                while writes:  # one pack in flight at most: memory stays bounded
                    landed.append(writes.popleft().result())
                writes.append(io.submit(store, packer))

        try:
            ahead = io.submit(_load, repo, order[0], packs[order[0]])
            for i, pid in enumerate(order):
                loaded: _Loaded | None = ahead.result()
                assert loaded is not None
                if i + 1 < len(order):
                    ahead = io.submit(_load, repo, order[i + 1], packs[order[i + 1]])
                progress(pid)
                wanted = [e for e in loaded.entries if e.id not in copied and keep(e)]
                for e, view in _sealed_blobs(repo, pid, wanted, loaded.data):
                    if e.id in copied:  # listed twice in this pack
                        continue
                    ad = blob_ad(e.type, e.id)
                    sealed: bytes | memoryview = view
                    if not current.authenticate(sealed, ad, scratch):
                        # Not the current key's (or damaged: then open raises, naming nothing
                        # copied): open with every key, seal with the current one.
                        sealed = sealer.seal(sealer.open(sealed, ad), ad, random=repo.random(28))
                    packer = open_packs.get(e.type)
                    if packer is None:
                        packer = open_packs[e.type] = PackWriter()
                    packer.add(e.type, e.id, sealed, e.raw_length)
                    copied.add(e.id)
                    moved += len(sealed)
                    if len(packer) >= repo.pack_size or packer.count >= MAX_PACK_BLOBS:
                        finish(e.type)
                # Nothing refers to the pack's bytes before the next one is waited for.
                loaded, view, sealed = None, memoryview(b""), b""
            ahead = None  # the last pack's bytes are not kept through the last writes
            for btype in list(open_packs):
                finish(btype)
            while writes:
                landed.append(writes.popleft().result())
        except BaseException:
            # Let the I/O threads settle before the error travels on; their own errors are
            # secondary to this one.
            if ahead is not None:
                ahead.cancel()
            for w in writes:
                w.cancel()
            raise
    if landed:
        repo.write_index(landed)
    return len(copied), moved
