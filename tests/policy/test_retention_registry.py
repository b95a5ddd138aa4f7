"""Retention strategies from outside snapvault: entry points, registration, and the errors."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

import snapvault as sv
from snapvault.policy import retention
from snapvault.policy.retention import KeepLast, Strategy, Union, strategy_from_dict
from tests.policy.retention_plugin import WIRE_ID, KeepLastButQuieter, KeepOldest

T0 = datetime(2026, 1, 10, tzinfo=UTC)


@dataclass(frozen=True)
class Snap:
    id: str
    time: datetime
    tags: tuple[str, ...] = ()


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with only the built-in strategies registered, as a fresh process does."""
    monkeypatch.setattr(retention, "_REGISTERED", {})


def install_plugin(root: Path, entries: dict[str, str], dist: str | None = None) -> str:
    """Lay out an installed distribution under ``root`` that declares ``entries``.

    importlib.metadata reads ``*.dist-info/entry_points.txt`` from every directory on sys.path,
    which is exactly what pip leaves behind for a package with entry points.
    """
    dist = dist or f"example_retention_{uuid.uuid4().hex[:8]}"
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[snapvault.retention]\n{lines}")
    return dist


@pytest.fixture
def plugin_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


# -- entry points ---------------------------------------------------------------------------


def test_a_strategy_from_an_entry_point_round_trips(plugin_root: Path) -> None:
    install_plugin(plugin_root, {WIRE_ID: "tests.policy.retention_plugin:KeepOldest"})
    wire = {"strategy": WIRE_ID, "n": 2}
    assert strategy_from_dict(wire) == KeepOldest(2)
    assert strategy_from_dict(wire).to_dict() == wire
    # Also as a member of a built-in composite, and applied like any other.
    both = strategy_from_dict({"strategy": "union", "strategies": [wire, {"strategy": "keep-last", "n": 1}]})
    assert both == Union([KeepOldest(2), KeepLast(1)])
    snaps = [Snap(f"s{i}", T0 + timedelta(days=i)) for i in range(5)]
    decision = both.apply(snaps, T0 + timedelta(days=9))
    assert decision.keep == ("s4", "s1", "s0")
    assert decision.reasons["s0"] == ("oldest 2",)


def test_entry_points_are_loaded_only_when_their_wire_id_is_asked_for(plugin_root: Path) -> None:
    module = f"sv_lazy_plugin_{uuid.uuid4().hex[:8]}"
    (plugin_root / f"{module}.py").write_text(
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "from snapvault.policy.retention import Strategy\n"
        "@dataclass(frozen=True)\n"
        "class KeepNone(Strategy):\n"
        "    wire_id: ClassVar[str] = 'example.lazy'\n"
        "    def _select(self, snapshots, now):\n"
        "        return {}\n"
    )
    install_plugin(plugin_root, {"example.lazy": f"{module}:KeepNone"})
    assert strategy_from_dict({"strategy": "keep-last", "n": 1}) == KeepLast(1)
    with pytest.raises(sv.UnknownStrategy):
        strategy_from_dict({"strategy": "example.other"})
    assert module not in sys.modules
    found = strategy_from_dict({"strategy": "example.lazy"})
    assert module in sys.modules
    assert type(found).__name__ == "KeepNone"


def test_an_unknown_wire_id_names_the_strategy_and_how_to_provide_it() -> None:
    with pytest.raises(sv.UnknownStrategy) as info:
        strategy_from_dict({"strategy": "acme.keep-odd", "n": 1})
    assert info.value.wire_id == "acme.keep-odd"
    message = str(info.value)
    assert "'acme.keep-odd'" in message
    assert "snapvault.retention" in message  # the entry point group to install
    assert "register_strategy" in message
    assert isinstance(info.value, sv.ConfigError)


def test_an_entry_point_named_differently_from_its_class_wire_id_is_refused(plugin_root: Path) -> None:
    # The class would write "example.keep-oldest" into a record read as "example.renamed".
    install_plugin(plugin_root, {"example.renamed": "tests.policy.retention_plugin:KeepOldest"})
    with pytest.raises(sv.UnknownStrategy, match=r"example\.renamed.*example\.keep-oldest"):
        strategy_from_dict({"strategy": "example.renamed", "n": 1})


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("tests.policy.retention_plugin:WIRE_ID", "not a retention strategy class"),
        ("sv_no_such_module_xyz:Thing", "could not be loaded"),
        ("tests.policy.retention_plugin:NoSuchName", "could not be loaded"),
    ],
)
def test_a_broken_entry_point_is_an_unknown_strategy_naming_it(plugin_root: Path, target: str, match: str) -> None:
    install_plugin(plugin_root, {"example.broken": target})
    with pytest.raises(sv.UnknownStrategy, match=match) as info:
        strategy_from_dict({"strategy": "example.broken"})
    assert "'example.broken'" in str(info.value)


def test_two_packages_claiming_one_wire_id_is_an_error(plugin_root: Path) -> None:
    install_plugin(plugin_root, {WIRE_ID: "tests.policy.retention_plugin:KeepOldest"})
    install_plugin(plugin_root, {WIRE_ID: "tests.policy.retention_plugin:KeepLastButQuieter"})
    with pytest.raises(sv.UnknownStrategy, match="several installed packages"):
        strategy_from_dict({"strategy": WIRE_ID, "n": 1})


def test_an_entry_point_cannot_take_over_a_built_in_wire_id(plugin_root: Path) -> None:
    install_plugin(plugin_root, {"keep-last": "tests.policy.retention_plugin:KeepLastButQuieter"})
    assert type(strategy_from_dict({"strategy": "keep-last", "n": 1})) is KeepLast


# -- programmatic registration ---------------------------------------------------------------


def test_register_strategy_makes_it_loadable() -> None:
    with pytest.raises(sv.UnknownStrategy):
        strategy_from_dict({"strategy": WIRE_ID, "n": 3})
    assert sv.register_strategy(KeepOldest) is KeepOldest  # usable as a class decorator
    assert strategy_from_dict({"strategy": WIRE_ID, "n": 3}) == KeepOldest(3)
    sv.register_strategy(KeepOldest)  # again: no-op


def test_registration_wins_over_an_entry_point(plugin_root: Path) -> None:
    install_plugin(plugin_root, {WIRE_ID: "sv_no_such_module_xyz:Thing"})
    sv.register_strategy(KeepOldest)
    assert strategy_from_dict({"strategy": WIRE_ID, "n": 1}) == KeepOldest(1)


def test_register_strategy_refuses_what_could_not_round_trip() -> None:
    with pytest.raises(sv.ConfigError, match="built-in"):
        sv.register_strategy(KeepLastButQuieter)  # "keep-last" is KeepLast's

    @dataclass(frozen=True)
    class Impostor(Strategy):
        wire_id: ClassVar[str] = WIRE_ID

        def _select(self, snapshots: object, now: datetime) -> dict[str, list[str]]:
            return {}

    sv.register_strategy(KeepOldest)
    with pytest.raises(sv.ConfigError, match="already registered"):
        sv.register_strategy(Impostor)

    class NotADataclass(Strategy):
        wire_id: ClassVar[str] = "example.plain"

        def _select(self, snapshots: object, now: datetime) -> dict[str, list[str]]:
            return {}

    with pytest.raises(sv.ConfigError, match="dataclass"):
        sv.register_strategy(NotADataclass)

    @dataclass(frozen=True)
    class NoWireId(Strategy):
        def _select(self, snapshots: object, now: datetime) -> dict[str, list[str]]:
            return {}

    with pytest.raises(sv.ConfigError, match="wire_id"):
        sv.register_strategy(NoWireId)

    @dataclass(frozen=True)
    class BadWireId(Strategy):
        wire_id: ClassVar[str] = "has spaces"

        def _select(self, snapshots: object, now: datetime) -> dict[str, list[str]]:
            return {}

    with pytest.raises(sv.ConfigError, match="wire_id"):
        sv.register_strategy(BadWireId)
    with pytest.raises(sv.ConfigError, match="Strategy"):
        sv.register_strategy(dict)  # type: ignore[arg-type]


# -- what a repository stores -----------------------------------------------------------------


def test_check_loadable_accepts_built_ins_and_registered_strategies() -> None:
    retention.check_loadable(Union([KeepLast(1), retention.GFS(daily=3)]))
    sv.register_strategy(KeepOldest)
    retention.check_loadable(Union([KeepLast(1), KeepOldest(2)]))


def test_check_loadable_refuses_an_unregistered_strategy_naming_it() -> None:
    for strategy in (KeepOldest(2), Union([KeepLast(1), KeepOldest(2)])):
        with pytest.raises(sv.UnknownStrategy) as info:
            retention.check_loadable(strategy)
        message = str(info.value)
        assert "KeepOldest" in message
        assert f"'{WIRE_ID}'" in message
        assert "register_strategy" in message
        assert "snapvault.retention" in message


def test_check_loadable_refuses_a_subclass_that_reads_back_as_its_parent() -> None:
    with pytest.raises(sv.ConfigError, match=r"KeepLastButQuieter.*reads back as.*KeepLast"):
        retention.check_loadable(KeepLastButQuieter(2))
