"""The facade: ``__all__`` is sorted, complete and documented."""

from __future__ import annotations

import inspect

import snapvault as sv
import snapvault.errors


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
    for name, obj in inspect.getmembers(snapvault.errors, inspect.isclass):
        if obj.__module__ == "snapvault.errors":
            assert obj in exported, f"error {name} is not exported"
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
