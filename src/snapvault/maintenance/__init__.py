"""Maintenance: reading a repository back, as a whole or in part, and copying between two.

Nouns
-----
Check
    :func:`~snapvault.maintenance.check.check_repository` verifies structure and, on request,
    every stored byte, and reports each ``Problem`` with where it is.
Verify
    :func:`~snapvault.maintenance.verify.verify_blobs` reads back a sample of the blobs a
    backup stored (a policy's ``verify``).
Copy
    :func:`~snapvault.maintenance.copy.copy_snapshots` moves snapshots into another repository,
    uploading only the blobs it lacks through the archiver's sink.
Browse
    :func:`~snapvault.maintenance.browse.walk_snapshot` lists a snapshot's entries.

Each takes the smallest interface it uses, declared here as a ``Protocol`` (``CheckRepository``,
``BlobReader``, ``CopySource``/``CopyDestination``, ``TreeReader``), never the whole repository.
"""
