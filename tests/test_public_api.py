"""The facade: ``__all__`` is sorted, complete and documented."""

from __future__ import annotations

import ast
import importlib
import inspect
import pickle
import re
from pathlib import Path

import pytest

import snapvault as sv
import snapvault.errors

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_and_unique() -> None:
    names = [n for n in sv.__all__ if n != "__version__"]
    assert names == sorted(names)
    assert len(set(sv.__all__)) == len(sv.__all__)


def test_all_names_exist_and_have_docstrings() -> None:
    for name in sv.__all__:
        obj = getattr(sv, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_every_public_class_in_the_package_is_exported() -> None:
    exported = {getattr(sv, n) for n in sv.__all__}
    for name in snapvault.errors.__all__:
        assert getattr(snapvault.errors, name) in exported, f"error {name} is not exported"
    for cls in (sv.Repository, sv.Engine, sv.Restorer, sv.Manifest):
        assert cls in exported


def test_public_methods_are_documented() -> None:
    for cls in (sv.Repository, sv.Engine, sv.Restorer):
        for name, member in inspect.getmembers(cls):
            if name.startswith("_") or not callable(member):
                continue
            assert inspect.getdoc(member), f"{cls.__name__}.{name} has no docstring"


def test_errors_subclass_the_builtins_callers_catch() -> None:
    assert issubclass(sv.ObjectNotFound, FileNotFoundError)
    assert issubclass(sv.RepositoryNotFound, FileNotFoundError)
    assert issubclass(sv.WrongPassword, PermissionError)
    assert issubclass(sv.IntegrityError, ValueError)
    assert issubclass(sv.SnapshotNotFound, LookupError)
    for name in sv.__all__:
        obj = getattr(sv, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, sv.SnapvaultError)


def _documented_names() -> list[str]:
    """The names docs/api.md lists, one bullet each."""
    text = (ROOT / "docs" / "api.md").read_text()
    return re.findall(r"^- `([A-Za-z_][A-Za-z0-9_]*)`:", text, re.M)


def test_all_equals_the_documented_list() -> None:
    documented = _documented_names()
    assert len(documented) == len(set(documented)), "a name is documented twice"
    assert sorted(documented) == sorted(sv.__all__)


def test_the_type_checking_block_agrees_with_the_table() -> None:
    """The TYPE_CHECKING imports (for type checkers) name the same modules as _PUBLIC."""
    tree = ast.parse((ROOT / "src" / "snapvault" / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    imported: dict[str, str] = {}
    for stmt in block.body:
        assert isinstance(stmt, ast.ImportFrom), ast.unparse(stmt)
        for alias in stmt.names:
            # `X as X` is the explicit re-export that strict type checkers honour.
            assert alias.asname == alias.name, ast.unparse(stmt)
            imported[alias.name] = f"{stmt.module}"
    submodules = dict.fromkeys(sv._SUBMODULES, "snapvault")
    assert imported == {**sv._PUBLIC, **submodules}


def test_each_public_name_imports_from_its_module_and_classes_report_snapvault() -> None:
    for name, module in sv._PUBLIC.items():
        obj = getattr(sv, name)
        assert obj is getattr(importlib.import_module(module), name)
        if inspect.isclass(obj):
            assert obj.__module__ == "snapvault", name
            assert obj.__qualname__ == name


def test_public_errors_pickle_by_their_public_name() -> None:
    err = sv.WrongPassword("no key file opens")
    assert pickle.loads(pickle.dumps(err)).args == err.args
    assert type(pickle.loads(pickle.dumps(err))) is sv.WrongPassword


def test_public_submodules() -> None:
    assert sv.retention.GFS is importlib.import_module("snapvault.retention").GFS
    assert sv.cron is importlib.import_module("snapvault.cron")
    with pytest.raises(sv.ConfigError):
        sv.cron.validate("61 * * * *")
    assert set(sv.retention.__all__) >= {"GFS", "KeepLast", "KeepWithin", "KeepTags", "Union", "Strategy"}
