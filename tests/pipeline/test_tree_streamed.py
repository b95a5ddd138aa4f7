"""A tree read from its compressed frame a piece at a time gives what the whole text gives."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.errors import IntegrityError
from snapvault.pipeline.blob import open_frame, seal_blob
from snapvault.pipeline.codecs import Codec, NoCompression, Zstd, decode_pieces
from snapvault.pipeline.crypto import make_sealer
from snapvault.pipeline.ids import BlobType, blob_id
from snapvault.pipeline.tree import Node, TreeNodes, _stream_nodes, encode_tree
from tests.pipeline.test_blob import ENC_KEY, ID_KEY, RANDOM, make
from tests.pipeline.test_tree import trees


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def _outcome(nodes: Iterator[Node]) -> tuple[list[Node], type[BaseException] | None]:
    out: list[Node] = []
    try:
        for n in nodes:
            out.append(n)
    except IntegrityError as e:
        return out, type(e)
    return out, None


@settings(max_examples=150, deadline=None)
@given(tree=trees, piece=st.integers(1, 64))
def test_pieces_of_any_size_give_the_nodes_of_the_whole(tree: list[Node], piece: int) -> None:
    raw = encode_tree(tree)
    assert list(_stream_nodes(_pieces(raw, piece))) == sorted(tree, key=lambda n: n.name)


def _variants(raw: bytes) -> list[bytes]:
    """Damaged spellings of a valid document: each one a reader must refuse."""
    return [
        raw[:-1],
        raw + b" ",
        raw.replace(b'],"v":1}', b'],"v":2}'),
        raw.replace(b'],"v":1}', b',],"v":1}'),
        raw.replace(b'{"nodes":[', b'{"nodes": ['),
        raw.replace(b"},{", b"}{", 1),
        raw.replace(b"},{", b"},,{", 1),
        raw.replace(b'"name":"a"', b'"name":"b"', 1),  # a duplicate name
        raw.replace(b'"name":"c"', b'"name":"../c"', 1),
        raw.replace(b'"type":"file"', b'"type":"door"', 1),
        raw.replace(b'"size":', b'"size":-', 1),
        raw[: len(raw) // 2],
        raw.replace(b"a", "\u00e9".encode(), 1),
        b'{"nodes":[{"name":"a","links":1,"type":"fifo"}' + b'{"x":' * 2000,
    ]


def _sample() -> bytes:
    return encode_tree([Node(name=n, type="file", size=i + 1, mode=0o644) for i, n in enumerate("abcdef")])


@pytest.mark.parametrize("piece", [1, 3, 16, 1 << 20])
@pytest.mark.parametrize("index", range(14))
def test_a_damaged_document_is_refused_in_pieces_as_it_is_whole(piece: int, index: int) -> None:
    bad = _variants(_sample())[index]
    try:
        whole = list(TreeNodes(bad))
    except IntegrityError:
        whole = None
    streamed, error = _outcome(_stream_nodes(_pieces(bad, piece)))
    assert whole is None, "every variant is damaged"
    assert error is not None
    assert issubclass(error, IntegrityError)
    # The nodes before the damage still came out, in order, and nothing after it.
    assert streamed == sorted(streamed, key=lambda n: n.name)


@pytest.mark.parametrize("codec", [Zstd(3), NoCompression()])
@pytest.mark.parametrize("sealer_name", ["aes-256-gcm", "none"])
def test_a_sealed_tree_opens_to_its_frame_and_streams_its_nodes(codec: Codec, sealer_name: str) -> None:
    tree = [Node(name=f"f{i:05d}", type="file", size=i, content=(f"{i:064x}",)) for i in range(20_000)]
    raw = encode_tree(tree)
    bid, sealed = make(sealer_name, codec, BlobType.TREE, raw)
    sealer = make_sealer(sealer_name, ENC_KEY)
    frame = open_frame(sealer, ID_KEY, BlobType.TREE, bid, sealed, len(raw))
    assert len(frame) < len(raw) or isinstance(codec, NoCompression)
    nodes = TreeNodes.streamed(frame, len(raw))
    assert list(nodes) == tree
    assert list(nodes) == tree  # and again, from the start
    # Under another blob's ID, or with a size other than the index's, it is refused.
    other = blob_id(ID_KEY, b"other")
    with pytest.raises(IntegrityError):
        open_frame(sealer, ID_KEY, BlobType.TREE, other, sealed, len(raw))
    # Sealed (authentically) under an ID its content does not hash to.
    mislabelled = seal_blob(sealer, codec, BlobType.TREE, other, raw, RANDOM)
    with pytest.raises(IntegrityError, match="does not match its ID"):
        open_frame(sealer, ID_KEY, BlobType.TREE, other, mislabelled, len(raw))
    with pytest.raises(IntegrityError):
        open_frame(sealer, ID_KEY, BlobType.TREE, bid, sealed, len(raw) - 1)


def test_a_zstd_frame_declaring_another_size_is_refused_before_decompressing() -> None:
    raw = b"x" * 1000
    frame = b"\x01" + zstandard.ZstdCompressor().compress(raw)
    with pytest.raises(IntegrityError, match="declares a size"):
        next(decode_pieces(frame, size=999))
    unsized = b"\x01" + zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    with pytest.raises(IntegrityError):
        next(decode_pieces(unsized, size=1000))
    with pytest.raises(IntegrityError, match="unknown codec wire ID"):
        next(decode_pieces(b"\x7f" + raw, size=1000))
    assert b"".join(decode_pieces(frame, size=1000, piece=7)) == raw


def test_the_json_of_a_streamed_tree_is_the_json_the_encoder_wrote() -> None:
    # The streamed reader accepts exactly the canonical document: a re-encoding of what it
    # yields is the same bytes.
    raw = _sample()
    assert encode_tree(list(_stream_nodes(_pieces(raw, 5)))) == raw
    assert json.loads(raw)["v"] == 1
