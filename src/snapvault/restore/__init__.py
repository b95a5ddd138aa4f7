"""Restore: a snapshot's files back onto a local folder, confined to it.

Nouns
-----
Restorer
    The orchestrator: resolves the snapshot, walks its trees, plans reads, fetches pack ranges
    on worker threads, and hands verified bytes to the writer.
Read plan
    Which blobs of which packs each file needs, grouped into ranged reads (pure; it lives in
    ``pipeline/restore_plan.py``).
Pack window
    A stretch of a pack fetched once and shared by the threads that need blobs in it (object
    stores), so a pack is not asked for once per directory.
Writer
    Everything that touches the target: directories, files under a temporary name renamed
    into place once every chunk verified, metadata, links; nothing ever leaves the target.
RestoreResult
    What a restore did, with each path it could not restore (``RestoreFileError``) and why.
"""
