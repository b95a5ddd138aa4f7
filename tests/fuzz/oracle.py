"""The oracle that judges every decoded input, and the strategy that damages real objects.

For every input, :func:`judge` asserts:

- only the decoder's typed errors escape (``Target.allowed``); anything else (a bare
  ``ValueError``, ``KeyError``, ``TypeError``, ``RecursionError``, ``OverflowError``,
  ``MemoryError``, a zstd, json, pydantic or cryptography error) fails, unless it is one of
  :data:`KNOWN_ESCAPES`;
- the peak of Python allocations (tracemalloc) while decoding stays under the target's bound,
  stated per decoder as a function of the input's size and the format's own limits.
"""

from __future__ import annotations

import json
import traceback
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import snapvault
from tests.fuzz.corpus import Terse
from tests.fuzz.mutate import byte_mutant, json_mutant, pick

__all__ = [
    "KNOWN_ESCAPES",
    "STORED",
    "STORED_JSON",
    "Layer",
    "Seed",
    "Target",
    "judge",
    "mutants",
    "stored_as_is",
    "where",
]

_SRC = str(Path(snapvault.__file__).parent) + "/"


@dataclass(frozen=True)
class Layer:
    """One form of an object: ``seal`` turns bytes of this form into the stored bytes."""

    name: str
    seal: Callable[[Any, bytes], bytes]
    json: bool = False


def stored_as_is(meta: Any, data: bytes) -> bytes:
    """The sealing of a layer that is already what the store holds (or what the decoder reads)."""
    return data


STORED = Layer("stored", stored_as_is)
STORED_JSON = Layer("stored", stored_as_is, json=True)


@dataclass(frozen=True, repr=False)
class Seed(Terse):
    """A real object: what its decoder needs besides the bytes, its layers, its decoded value."""

    meta: Any
    layers: Mapping[str, bytes]
    expected: Any
    label: str

    def __repr__(self) -> str:
        return f"Seed({self.label!r})"


@dataclass(frozen=True, repr=False)
class Target(Terse):
    """A decoder, the errors it may raise, and the most it may allocate."""

    name: str
    decode: Callable[[Any, bytes], Any]
    allowed: tuple[type[Exception], ...]
    bound: Callable[[Any, int], int]
    bound_text: str
    layers: tuple[Layer, ...]
    seeds: tuple[Seed, ...]
    # Context an attacker also controls (an index's sizes for a blob, a listing's pack size).
    hostile_meta: Callable[[st.DrawFn, Any], Any] | None = None
    # A further check of whatever decodes (for decoders that report damage instead of raising).
    check: Callable[[Any], None] | None = None
    # False for an input the decoder may legitimately spend a lot on (a key file's stated KDF cost).
    admit: Callable[[bytes], bool] = field(default=lambda data: True)

    def __repr__(self) -> str:  # failure reports print the targets; their seeds are long
        return f"Target({self.name!r})"


#: Untyped escapes found and not yet fixed: (target, exception type, the snapvault function it
#: left, as :func:`where` gives it) -> the name of the strict-xfail test in
#: test_found_escapes.py that reproduces it. The oracle tolerates exactly these, so fuzzing goes
#: on finding others; the pinned test fails once the bug is fixed, and then its entry goes.
#: Empty: every escape found so far is fixed, and test_found_escapes.py keeps each as a
#: regression test.
KNOWN_ESCAPES: dict[tuple[str, str, str], str] = {}


def where(e: BaseException) -> str:
    """The innermost snapvault function the exception passed through (``module.py:function``)."""
    last = "?"
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename.startswith(_SRC):
            last = f"{frame.filename[len(_SRC) :]}:{frame.name}"
    return last


def judge(target: Target, meta: Any, data: bytes) -> str:
    """Decode ``data`` and apply the oracle; return what happened (for statistics).

    Raises AssertionError on an untyped escape or a memory peak over the target's bound.
    """
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        value = target.decode(meta, data)
    except target.allowed as e:
        outcome = type(e).__name__
    except Exception as e:
        signature = (target.name, type(e).__name__, where(e))
        if signature not in KNOWN_ESCAPES:
            raise AssertionError(
                f"decoder {target.name!r} let {type(e).__name__} escape from {signature[2]}: {e!r:.300}"
            ) from e
        outcome = "known escape " + "/".join(signature)
    else:
        if target.check is not None:
            target.check(value)
        outcome = "decoded"
    peak = tracemalloc.get_traced_memory()[1] - base
    limit = target.bound(meta, len(data))
    assert peak <= limit, (
        f"decoder {target.name!r} allocated {peak} bytes at its peak for {len(data)} bytes of input; "
        f"the bound is {limit} ({target.bound_text})"
    )
    return outcome


def mutants(target: Target) -> st.SearchStrategy[tuple[str, Any, bytes]]:
    """(layer, context, stored bytes) for damaged versions of the target's real objects."""
    donors = [b for s in target.seeds for b in s.layers.values()]
    parsed: dict[bytes, Any] = {}

    @st.composite
    def draw_one(draw: st.DrawFn) -> tuple[str, Any, bytes]:
        seed = pick(draw, target.seeds)
        layer = pick(draw, [x for x in target.layers if x.name in seed.layers])
        raw = seed.layers[layer.name]
        if layer.json and draw(st.booleans()):
            if raw not in parsed:
                parsed[raw] = json.loads(raw)
            mutated = json_mutant(draw, parsed[raw])
        else:
            mutated = byte_mutant(draw, raw, donors)
        meta = seed.meta
        if target.hostile_meta is not None and draw(st.booleans()):
            meta = target.hostile_meta(draw, seed.meta)
        # Sealed with the seed's own (real) key and associated data, whatever the context says.
        return layer.name, meta, layer.seal(seed.meta, mutated)

    return draw_one()
