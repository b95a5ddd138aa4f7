"""Maintenance: the operations that look after a repository rather than back up or restore.

Nouns
-----
Check
    Verifies structure (indexes, packs, every snapshot's trees) and, on request, every stored
    byte; reports each problem with the snapshot, path, pack and blob it concerns.
Verification
    Reads back the blobs a backup just added, to prove the store kept them.
Copy
    Transfers snapshots to another repository, sending only the blobs it lacks.
Browse
    Lists a snapshot's entries (``ls``) without restoring them.
"""
