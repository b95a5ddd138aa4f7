"""Hypothesis strategies that damage real objects: byte mutations and JSON structural mutations.

Byte mutations are what storage faults and crude attacks do: bit flips, overwritten bytes
(with the integers a length field is most hurt by), truncation at either end, insertions,
runs of one byte, deleted and repeated ranges, and chunks spliced in from other objects.

Structural mutations are what a forger holding the key does: the parsed JSON is changed (keys
dropped, added and repeated, values of the wrong type, huge and non-finite numbers, long and
hostile strings, deep nesting) and serialised again, so the bytes still parse and, re-sealed
by the caller with the real key, pass authentication: what is then tested is the validator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

__all__ = ["U32", "Pairs", "Raw", "byte_mutant", "dump", "json_mutant", "pick"]


class Raw(str):
    """JSON text emitted as it is: nesting too deep for ``json.dumps``, integers past its limit."""


class Pairs(list[tuple[str, Any]]):
    """A JSON object written with these members in this order, repeated keys included."""


# Values a length or count field is most hurt by, as 4-byte little-endian words.
_WORDS = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF]
_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, ord("{"), ord("["), ord('"'), ord("\\"), ord("0"), ord("9")]


# Strategies are built once: building one per draw costs more than the decoding under test.
_BYTE_OPS = st.sampled_from(
    ["flip", "byte", "word", "truncate", "behead", "insert", "run", "delete", "repeat", "splice"]
)
_ANY_BYTE = st.sampled_from(_BYTES) | st.integers(0, 255)
_ANY_WORD = st.sampled_from(_WORDS) | st.integers(0, 2**32 - 1)
_RUN_BYTE = st.sampled_from(_BYTES)
_RUN_LENGTH = st.sampled_from([2, 17, 255, 4096, 70_000])
_INSERT = st.binary(min_size=1, max_size=64)
_FOUR = st.integers(1, 4)
_THREE = st.integers(1, 3)


# Positions and choices are drawn from one fixed range and reduced, not from st.integers(0, n)
# with n changing every time: a new strategy object per draw costs more than it draws.
U32 = st.integers(0, 2**32 - 1)


def _index(draw: st.DrawFn, n: int) -> int:
    """An index into ``n`` items (shrinks towards 0)."""
    return draw(U32) % n


def pick(draw: st.DrawFn, items: Sequence[Any]) -> Any:
    """One of ``items`` (shrinks towards the first)."""
    return items[_index(draw, len(items))]


def byte_mutant(draw: st.DrawFn, seed: bytes, donors: Sequence[bytes]) -> bytes:
    """``seed`` after one to four byte-level mutations; ``donors`` supply spliced chunks."""
    data = bytearray(seed)
    for _ in range(draw(_FOUR)):
        op = draw(_BYTE_OPS)
        n = len(data)
        pos = _index(draw, n + 1)
        if op == "flip" and n:
            data[min(pos, n - 1)] ^= 1 << _index(draw, 8)
        elif op == "byte" and n:
            data[min(pos, n - 1)] = draw(_ANY_BYTE)
        elif op == "word":
            data[pos : pos + 4] = draw(_ANY_WORD).to_bytes(4, "little")
        elif op == "truncate":
            del data[pos:]
        elif op == "behead":
            del data[:pos]
        elif op == "insert":
            data[pos:pos] = draw(_INSERT)
        elif op == "run":
            data[pos:pos] = bytes([draw(_RUN_BYTE)]) * draw(_RUN_LENGTH)
        elif op == "delete":
            del data[pos : pos + 1 + _index(draw, 256)]
        elif op == "repeat":
            chunk = data[pos : pos + 1 + _index(draw, 512)]
            data[pos:pos] = chunk * (1 + _index(draw, 8))
        elif op == "splice" and donors:
            donor = pick(draw, donors)
            start = _index(draw, len(donor) + 1)
            chunk = donor[start : start + 1 + _index(draw, 1024)]
            if draw(st.booleans()):
                data[pos : pos + len(chunk)] = chunk
            else:
                data[pos:pos] = chunk
    return bytes(data)


# -- JSON ------------------------------------------------------------------------------------


def _deep(depth: int, kind: str) -> Raw:
    if kind == "array":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


_SPECIAL: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**32,
    2**32 - 1,
    2**62 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    Raw("9" * 5000),  # past Python's default int-to-text limit of 4300 digits
    Raw("-" + "9" * 5000),
    0.5,
    -0.0,
    1e308,
    Raw("1e400"),  # parses as infinity
    float("inf"),
    float("-inf"),
    float("nan"),
    "",
    "a" * 100_000,
    "\x00",
    ".",
    "..",
    "/",
    "../../etc/passwd",
    "a/b",
    "\ud800",  # a lone surrogate: valid JSON text, not encodable as UTF-8
    "\udcff",
    "ü\u202e",
    "0" * 64,
    "g" * 64,
    "QR==",
    "not base64!",
    "2026-02-30T25:61:00+00:00",
    "9999-12-31T23:59:59+14:00",
    [],
    {},
    [None] * 10_000,
    [0] * 10_000,
    ["a"] * 3,
    {"strategy": "union", "strategies": []},
    {"strategy": "acme.unknown"},
]
_DEPTHS = [3, 64, 500, 1000, 3000, 100_000]


# Text from bytes (code points 0-255): st.text's character tables cost more per draw than the
# decoders under test, and the specials above already bring surrogates and non-Latin text.
_TEXT = st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
_SHORT_TEXT = st.binary(max_size=8).map(lambda b: b.decode("latin-1"))
_LEAF: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(_SPECIAL),
    st.builds(_deep, st.sampled_from(_DEPTHS), st.sampled_from(["array", "object"])),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
    st.recursive(
        st.none() | st.booleans() | st.integers() | _SHORT_TEXT,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_SHORT_TEXT, inner, max_size=4),
        max_leaves=8,
    ),
)
_JSON_OPS = st.sampled_from(["replace", "drop", "add", "duplicate", "list", "tweak", "wrap"])
_LIST_OPS = st.sampled_from(["append", "repeat", "clear", "reverse", "drop"])
_NEW_KEY = _SHORT_TEXT


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, Pairs):
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:64]):
            out += _paths(v, (*path, i))
    return out


def _keys(value: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            out |= _keys(v)
    elif isinstance(value, list):
        for v in value[:64]:
            out |= _keys(v)
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    _get(value, path[:-1])[path[-1]] = new
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, Pairs):
        return Pairs(value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _fresh(draw: st.DrawFn) -> Any:
    # A copy: the special values are shared constants, and later mutations work in place.
    return _copy(draw(_LEAF))


def json_mutant(draw: st.DrawFn, doc: Any) -> bytes:
    """The JSON ``doc`` after one to three structural mutations, serialised to bytes."""
    doc = _copy(doc)
    vocabulary = sorted(_keys(doc)) or ["v"]
    for _ in range(draw(_THREE)):
        paths = _paths(doc)
        path = paths[_index(draw, len(paths))]
        node = _get(doc, path)
        op = draw(_JSON_OPS)
        if op == "replace":
            doc = _set(doc, path, _fresh(draw))
        elif op == "drop" and path:
            parent = _get(doc, path[:-1])
            if isinstance(parent, (dict, list)):
                del parent[path[-1]]
        elif op == "add" and isinstance(node, dict) and not isinstance(node, Pairs):
            key = vocabulary[_index(draw, len(vocabulary))] if draw(st.booleans()) else draw(_NEW_KEY)
            node[key] = _fresh(draw)
        elif op == "duplicate" and isinstance(node, dict) and node:
            # The same key twice: parsers differ on which one wins, so a reader must not care.
            members = list(node.items())
            extra = (members[_index(draw, len(members))][0], _fresh(draw))
            doc = _set(doc, path, Pairs([extra, *members] if draw(st.booleans()) else [*members, extra]))
        elif op == "list" and isinstance(node, list) and not isinstance(node, Pairs):
            how = draw(_LIST_OPS)
            if how == "append":
                node.append(_fresh(draw))
            elif how == "repeat" and node:
                node[:] = node * pick(draw, [2, 3, 1000])
            elif how == "clear":
                node.clear()
            elif how == "reverse":
                node.reverse()
            elif node:
                del node[_index(draw, len(node))]
        elif op == "tweak" and type(node) is int:
            # Off by one, negated, past 32 and 64 bits, and the same number as a float, an
            # infinity and a string: json gives floats for 1e400, int() fails on those.
            as_float = float(node) if abs(node) < 2**1000 else Raw("1e400")
            tweaks = [node + 1, node - 1, -node, node * 2**32, node << 64, as_float, Raw("1e400"), str(node)]
            doc = _set(doc, path, pick(draw, tweaks))
        elif op == "tweak" and isinstance(node, str):
            doc = _set(doc, path, pick(draw, [node + "/x", "../" + node, node + "\x00", node[:-1], node * 3]))
        elif op == "wrap":
            doc = _set(doc, path, pick(draw, [[node], {"v": node}]))
    canonical = draw(st.booleans())
    return dump(doc, canonical=canonical).encode()


def dump(value: Any, *, canonical: bool) -> str:
    """JSON text of ``value`` with :class:`Raw` and :class:`Pairs` spliced in as they are.

    ``canonical`` writes sorted keys without spaces (what the library writes); otherwise keys
    keep their order and spacing is loose, as a hand-written file might be.
    """
    comma, colon = (",", ":") if canonical else (", ", ": ")
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs):
        members = list(value)
    elif isinstance(value, dict):
        members = sorted(value.items()) if canonical else list(value.items())
    elif isinstance(value, list):
        return "[" + comma.join(dump(v, canonical=canonical) for v in value) + "]"
    else:
        return json.dumps(value, ensure_ascii=True, allow_nan=True)
    return "{" + comma.join(json.dumps(k) + colon + dump(v, canonical=canonical) for k, v in members) + "}"
