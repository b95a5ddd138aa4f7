"""Repack: move the live blobs of chosen packs into new packs, sealed bytes as they are.

A pack is read once, whole; each live blob is authenticated (its type and ID are bound into
its sealing, so this proves it is the blob it claims to be) and appended to a new pack without
being decompressed or compressed again. A blob a retired key sealed (a key rotation's rewrite)
is opened and sealed again with the current key.

The reads, the copying and the writes overlap: the next pack is read and the last finished
one written (and fsynced) by two I/O threads while this thread copies blobs, so the run takes
about as long as its slowest part rather than the sum of the three. At most one pack is read
ahead and one written behind, so memory stays at four packs (the one being read, the one being
copied from, the one being filled, the one being written). The index file naming the new packs
is written only after every one of them is stored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from snapvault.archiver.sink import SinkRepository
from snapvault.pipeline.crypto import AEADSealer, PlainSealer
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.pack import MAX_PACK_BLOBS, PackEntry, PackWriter, blob_ad

__all__ = ["RepackRepository", "repack_packs"]


class RepackRepository(SinkRepository, Protocol):
    """What a repack needs of a repository beyond a sink's: whole packs and their headers."""

    @property
    def sealer(self) -> AEADSealer | PlainSealer:
        """The sealer of new objects (with any retired keys to open old ones)."""
        ...

    def read_pack(self, pack_id: bytes | str) -> bytes:
        """A whole stored pack."""
        ...

    def pack_header(self, data: bytes | memoryview) -> list[PackEntry]:
        """The authenticated header of a whole pack held in memory."""
        ...

    def random(self, n: int) -> bytes:
        """``n`` fresh random bytes."""
        ...


def repack_packs(
    repo: RepackRepository,
    packs: Iterable[bytes],
    keep: Callable[[PackEntry], bool],
    progress: Callable[[bytes], None] = lambda pid: None,
) -> tuple[int, int]:
    """Copy the blobs of ``packs`` that ``keep`` accepts into new packs; index them.

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
        ahead: Future[bytes] | None = None

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
            ahead = io.submit(repo.read_pack, order[0])
            for i, pid in enumerate(order):
                data = ahead.result()
                if i + 1 < len(order):
                    ahead = io.submit(repo.read_pack, order[i + 1])
                progress(pid)
                view = memoryview(data)
                for e in repo.pack_header(view):
                    if e.id in copied or not keep(e):
                        continue
                    ad = blob_ad(e.type, e.id)
                    sealed: bytes | memoryview = view[e.offset : e.offset + e.length]
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
                del view, data
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
