"""The archiver: turns local files into blobs, trees and a manifest.

Nouns
-----
BlobSink
    Takes blob plaintexts from the walker, drops the ones the repository already has, and
    encodes, packs and uploads the rest on worker threads, writing index files as packs land.
Walker
    Reads the local filesystem (the only part that does), builds tree nodes and feeds file
    chunks to the sink; reuses a parent snapshot's chunk lists for unchanged files.
"""
