"""The archiver: turns local files into blobs, trees and a manifest.

Nouns
-----
BlobSink
    Takes blob plaintexts from the walker, drops the ones the repository already has, and
    encodes, packs and uploads the rest on worker threads, writing index files as packs land.
Walker
    Reads the local filesystem (the only part that does), builds tree nodes and feeds file
    chunks to the sink; reuses a parent snapshot's chunk lists for unchanged files.
SinkRepository, BackupRepository
    The ``Protocol``s of what the sink and a backup run use of a repository; any object with
    those methods will do (the archiver never sees the repository's keys or store).
BackupSettings
    Threads, memory bound, clock and randomness: one frozen value shared by a backup of paths
    and a policy run.
"""
