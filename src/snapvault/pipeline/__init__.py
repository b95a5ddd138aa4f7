"""The content pipeline: pure functions from bytes to values, no I/O.

Nouns
-----
Chunk
    A run of a file's bytes whose end was chosen by content-defined chunking (FastCDC), so an
    insert early in a file moves only the boundaries near it.
Blob
    The unit of storage: a chunk of file data (type ``DATA``) or a serialised directory
    (type ``TREE``). A blob is named by its *blob ID*, the keyed BLAKE3 hash of its plaintext.
Codec
    A reversible transform of a blob's plaintext (zstd or none), chosen per blob.
Sealer
    The AEAD that encrypts and authenticates a blob, binding its ID and type.
Pack
    A storage object holding many sealed blobs followed by a sealed header that lists them,
    so the index can be rebuilt from the packs alone.
Index
    The map from blob ID to (pack, offset, length), written as one file per backup session.

Nothing in this package imports ``os``, ``fsspec``, a clock or the environment; randomness
comes in as a parameter where a caller may want to fix it.
"""
