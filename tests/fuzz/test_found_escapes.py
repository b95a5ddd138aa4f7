"""The untyped escapes the fuzzers found, each reproduced on a real object, now typed errors.

Each test asserts what the documentation promises and names, in a comment, what escaped before
the fix. An escape found and not yet fixed gets its test here marked
``xfail(strict=True, raises=<the escape>)`` and its signature in ``oracle.KNOWN_ESCAPES``, which
lets the fuzzers tolerate exactly that escape while they go on looking for others; the strict
xfail fails as soon as the bug is fixed, and then both go.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import fsspec
import pytest

import snapvault as sv
from snapvault.errors import IntegrityError, UnsupportedFormat, WrongPassword
from snapvault.pipeline.ids import object_hash
from snapvault.policy.records import RUN_AD, load_runs
from snapvault.repository import layout
from snapvault.repository.config import MasterKeys, RepoConfig, open_key_file, open_plain_key_file
from snapvault.storage import open_store
from tests.fuzz.corpus import PASSWORD, Material
from tests.fuzz.mutate import Raw, dump
from tests.fuzz.oracle import KNOWN_ESCAPES
from tests.fuzz.targets import shared

DEEP = Raw("[" * 100_000 + "]" * 100_000)
INFINITY = Raw("1e400")  # valid JSON; Python's json reads it as float('inf')


def material(name: str) -> Material:
    return next(s.meta.material for s in shared()["blob"].seeds if s.meta.material.name == name)


def edited(data: bytes, path: tuple[str, ...], value: Any) -> bytes:
    """``data`` (JSON) with the member at ``path`` set to ``value``, in the writer's layout."""
    doc = json.loads(data)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return dump(doc, canonical=False).encode()


# -- run records -----------------------------------------------------------------------------


def test_a_run_record_that_does_not_validate_is_an_integrity_error() -> None:
    # Was: pydantic's ValidationError out of policy/records.py load_runs.
    repo = material("aes-zstd").repo
    stored = repo.sealer.seal(b'{"policy": "docs"}', RUN_AD, random=bytes(28))
    key = layout.object_key(layout.RUNS, object_hash(stored).hex())
    repo.store.put_if_absent(key, stored)
    try:
        with pytest.raises(IntegrityError):
            load_runs(repo)
    finally:
        repo.store.delete(key)


# -- the repository config (plain JSON: anyone who can write the storage can edit it) -------


def test_a_config_nested_too_deep_is_refused() -> None:
    # Was: RecursionError out of RepoConfig.from_bytes (and Repository.open, before any key).
    with pytest.raises((IntegrityError, UnsupportedFormat)):
        RepoConfig.from_bytes(edited(material("aes-zstd").config, ("chunker",), DEEP))


@pytest.mark.parametrize("path", [("pack_size",), ("chunker", "min_size")])
def test_a_config_with_an_infinite_number_is_refused(path: tuple[str, ...]) -> None:
    # Was: OverflowError (int() of json's infinity) out of RepoConfig.from_bytes and
    # ChunkerParams.from_dict.
    with pytest.raises((IntegrityError, UnsupportedFormat)):
        RepoConfig.from_bytes(edited(material("chacha-raw").config, path, INFINITY))


# -- key material ----------------------------------------------------------------------------


def test_master_keys_with_an_infinite_chunker_seed_are_refused() -> None:
    # Was: OverflowError out of MasterKeys.from_json, also through open_plain_key_file, whose
    # input anyone who can write the storage can edit.
    m = material("plain-zstd")
    with pytest.raises(IntegrityError):
        MasterKeys.from_json(edited(m.repo.master_keys.to_json(), ("chunker_seed",), INFINITY))
    with pytest.raises(IntegrityError):
        open_plain_key_file(edited(m.key_file, ("keys", "chunker_seed"), INFINITY))


@pytest.mark.parametrize("field", ["memory_kib", "iterations", "lanes"])
def test_a_key_file_with_an_infinite_kdf_cost_is_refused(field: str) -> None:
    # Was: OverflowError out of open_key_file, before any password check.
    key_file = edited(material("aes-zstd").key_file, ("kdf", field), INFINITY)
    with pytest.raises((IntegrityError, UnsupportedFormat, WrongPassword)):
        open_key_file(key_file, PASSWORD.encode())


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_master_keys_with_a_chunker_seed_out_of_range_are_damage(seed: int) -> None:
    # Was: accepted by MasterKeys.from_json, then ConfigError (a caller's bad option) out of
    # Repository.open. The unencrypted repository's config, and its key file (in clear: anyone
    # who can write the storage can edit it) with only the seed changed.
    m = material("plain-zstd")
    url = f"memory://fuzz-seed-{uuid.uuid4().hex}"
    store = open_store(url)
    key_file = edited(m.key_file, ("keys", "chunker_seed"), seed)
    store.put_if_absent(layout.object_key(layout.KEYS, object_hash(key_file).hex()), key_file)
    store.put_if_absent(layout.CONFIG, m.config)
    try:
        with pytest.raises(IntegrityError):
            sv.Repository.open(url, store=store)
    finally:
        fsspec.filesystem("memory").rm(url, recursive=True)


# -- the table --------------------------------------------------------------------------------


def test_every_tolerated_escape_is_pinned_by_a_strict_xfail_here() -> None:
    module = sys.modules[__name__]
    for signature, test_name in KNOWN_ESCAPES.items():
        test = getattr(module, test_name, None)
        assert test is not None, (signature, test_name)
        marks = list(getattr(test, "pytestmark", []))
        for param_marks in (p.marks for m in marks if m.name == "parametrize" for p in m.args[1]):
            marks += [m for m in param_marks if not isinstance(m, pytest.MarkDecorator)]
            marks += [m.mark for m in param_marks if isinstance(m, pytest.MarkDecorator)]
        assert any(m.name == "xfail" and m.kwargs.get("strict") for m in marks), (signature, test_name)
