"""Restore: writing a snapshot back into a local directory, and nothing outside it.

Nouns
-----
Plan
    What to restore and how to read it, decided by the pure functions of
    :mod:`snapvault.pipeline.restore_plan`: the selected tree entries, which files are written
    and which are hardlinks of them, and for each directory which files share one ranged read.
Source
    What a restore reads from a repository (:mod:`.source`): snapshots, trees, blob locations,
    pack ranges and the opening of sealed blobs. A ``Protocol``; ``snapvault.Repository`` is one.
Reader
    :class:`~snapvault.restore.fetch.PackReader`: fetches pack ranges as the store is best read
    and verifies the blobs in them; a missing or altered pack is damage.
Writer
    :class:`~snapvault.restore.writer.TargetWriter`: the only code that touches the target;
    every call is relative to an open directory, never through a symlink, and every entry is
    made under a temporary name and renamed into place whole.
Restorer
    :class:`~snapvault.restore.restorer.Restorer`: the orchestrator. It walks the plan, hands
    reads and writes to its threads and collects the :class:`RestoreResult`.
"""
