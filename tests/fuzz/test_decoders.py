"""Every decoder, fed damaged and forged versions of real objects, raises only its typed errors
and allocates no more than its stated bound; the undamaged objects decode to what was written.

The decoders, their seeds, their allowed errors and their memory bounds are the table in
``targets.py``, the oracle ``oracle.py``; one fuzz test per decoder below (``test_fuzz_<decoder>``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from snapvault.errors import IntegrityError
from snapvault.pipeline.codecs import NoCompression, Zstd
from tests.fuzz.conftest import FUZZ
from tests.fuzz.corpus import build_corpus
from tests.fuzz.oracle import Target, judge, mutants
from tests.fuzz.targets import TARGET_NAMES, build_targets, shared


def test_every_target_is_fuzzed() -> None:
    assert sorted(shared()) == sorted(TARGET_NAMES)
    assert all(f"test_fuzz_{n.replace('-', '_')}" in globals() for n in TARGET_NAMES)


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_real_objects_decode_at_every_layer(name: str) -> None:
    # The generators are real: each seed, rebuilt through each layer's sealing, decodes to the
    # value the library wrote, within the memory bound.
    target = shared()[name]
    assert target.seeds
    for seed in target.seeds:
        for layer in (x for x in target.layers if x.name in seed.layers):
            stored = layer.seal(seed.meta, seed.layers[layer.name])
            assert target.admit(stored)
            assert judge(target, seed.meta, stored) == "decoded", (seed.label, layer.name)
            assert target.decode(seed.meta, stored) == seed.expected, (seed.label, layer.name)


def test_seeds_cover_every_sealer_and_codec() -> None:
    blobs = shared()["blob"].seeds
    sealers = {type(s.meta.material.repo.sealer).__name__ + ":" + s.meta.material.repo.sealer.name for s in blobs}
    assert sealers == {"AEADSealer:aes-256-gcm", "AEADSealer:chacha20-poly1305", "PlainSealer:none"}
    assert {s.layers["frame"][0] for s in blobs} == {NoCompression.wire_id, Zstd.wire_id}


def test_the_real_objects_are_the_same_on_every_build() -> None:
    # Derandomized CI runs meet the same inputs only if the seeds are byte-identical each time.
    def digest(targets: dict[str, Target]) -> str:
        h = hashlib.sha256()
        for name in TARGET_NAMES:
            for seed in targets[name].seeds:
                for layer in sorted(seed.layers):
                    h.update(seed.layers[layer])
        return h.hexdigest()

    corpus = build_corpus()
    try:
        assert digest(build_targets(corpus)) == digest(shared())
    finally:
        corpus.close()


def test_the_oracle_fails_untyped_escapes_and_memory_over_the_bound() -> None:
    # The judge itself must be able to fail, or every fuzz test above passes vacuously.
    codec = shared()["codec-frame"]
    limit, frame = codec.seeds[0].meta, codec.seeds[0].layers["frame"]

    def raises(e: Exception) -> Target:
        def decode(meta: object, data: bytes) -> object:
            raise e

        return replace(codec, decode=decode)

    assert judge(raises(IntegrityError("damaged")), limit, frame) == "IntegrityError"
    for escape in (ValueError("bare"), KeyError("k"), RecursionError(), OverflowError()):
        with pytest.raises(AssertionError, match=f"let {type(escape).__name__} escape"):
            judge(raises(escape), limit, frame)
    hungry = replace(codec, decode=lambda meta, data: bytearray(8 << 20), bound=lambda meta, n: 4 << 20)
    with pytest.raises(AssertionError, match="allocated"):
        judge(hungry, limit, frame)


def _fuzz_test(name: str) -> Callable[[Any], None]:
    # One test per decoder rather than a parametrised one: the strategy is the decoder's own,
    # and a given() argument (unlike st.data()) keeps hypothesis's per-draw overhead down.
    @FUZZ
    @given(case=st.deferred(lambda: mutants(shared()[name])))
    def test(case: tuple[str, object, bytes]) -> None:
        layer, meta, stored = case
        target = shared()[name]
        assume(target.admit(stored))
        event(f"layer: {layer}")
        event(judge(target, meta, stored))

    test.__name__ = test.__qualname__ = f"test_fuzz_{name.replace('-', '_')}"
    test.__doc__ = f"Damaged and forged {name} objects: only typed errors, bounded memory."
    return test


for _name in TARGET_NAMES:
    globals()[f"test_fuzz_{_name.replace('-', '_')}"] = _fuzz_test(_name)
