"""Policy: validation, JSON round trips, and storage in the repository."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
import pytest

import snapvault as sv
from snapvault.policy import retention
from snapvault.policy.records import POLICY_AD
from snapvault.policy.retention import GFS, KeepLast, KeepWithin, Union
from tests.conftest import FAST_KDF, PASSWORD
from tests.policy.retention_plugin import WIRE_ID, KeepLastButQuieter, KeepOldest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def full_policy(name: str = "db-prod") -> sv.Policy:
    """A policy with every field set to a non-default value."""
    return sv.Policy(
        name=name,
        sources=["/srv/db", "/etc/db.conf"],
        exclude=["*.tmp", "cache/"],
        backup_type="differential",
        schedule="*/15  9-17 * * mon-fri",
        timezone="Europe/Berlin",
        retention=Union([KeepLast(3), GFS(daily=7, weekly=4, timezone="Europe/Berlin"), KeepWithin("2d")]),
        compression="zstd:9",
        verify="sample:12.5%",
        max_concurrency=3,
        tags=["db", "prod"],
        pre_hooks=["pg_dump -f /srv/db/dump.sql"],
        post_hooks=["rm -f /srv/db/dump.sql"],
    )


# -- construction and defaults --------------------------------------------------------------


def test_defaults() -> None:
    p = sv.Policy(name="p", sources=["/x"])
    assert p.backup_type == "incremental"
    assert p.exclude == []
    assert p.tags == []
    assert p.pre_hooks == []
    assert p.post_hooks == []
    assert p.schedule is None
    assert p.retention is None
    assert p.compression is None
    assert p.timezone == "UTC"
    assert p.verify == "none"
    assert p.verify_fraction == 0.0
    assert p.codec is None
    assert p.max_concurrency is None


def test_schedule_is_normalised_and_derived_values() -> None:
    p = full_policy()
    assert p.schedule == "*/15 9-17 * * MON-FRI"
    assert sv.Policy(name="p", sources=["/x"], schedule=" @Daily ").schedule == "0 0 * * *"
    assert p.verify_fraction == pytest.approx(0.125)
    assert p.codec == sv.Zstd(9)
    assert sv.Policy(name="p", sources=["/x"], compression="none").codec == sv.NoCompression()
    assert sv.Policy(name="p", sources=["/x"], compression="zstd").codec == sv.Zstd(3)
    assert sv.Policy(name="p", sources=["/x"], verify="all").verify_fraction == 1.0


def test_retention_dict_form_builds_the_strategy() -> None:
    p = sv.Policy(name="p", sources=["/x"], retention={"strategy": "keep-last", "n": 4})
    assert p.retention == KeepLast(4)
    p2 = sv.Policy(name="p", sources=["/x"], retention=KeepLast(4))
    assert p == p2


def test_policy_is_frozen() -> None:
    p = sv.Policy(name="p", sources=["/x"])
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        p.name = "q"  # type: ignore[misc]
    assert p.name == "p"


@pytest.mark.parametrize("name", ["a", "db.prod_1-a", "X" * 64, "0start"])
def test_good_names(name: str) -> None:
    assert sv.Policy(name=name, sources=["/x"]).name == name


# -- rejection ------------------------------------------------------------------------------


def _rejected(field: str, **kwargs: object) -> str:
    base: dict[str, object] = {"name": "p", "sources": ["/x"]}
    base.update(kwargs)
    with pytest.raises(sv.ConfigError) as info:
        sv.Policy(**base)
    msg = str(info.value)
    assert msg.startswith("invalid policy: "), msg
    assert f"{field}:" in msg, msg
    return msg


@pytest.mark.parametrize("expr", ["61 * * * *", "* * *", "0 0 30 2 *", "@fortnightly", "* * * * * *", "not cron"])
def test_invalid_cron_names_schedule(expr: str) -> None:
    msg = _rejected("schedule", schedule=expr)
    assert msg.startswith("invalid policy: schedule:")


@pytest.mark.parametrize("btype", ["weekly", "FULL", "", "incr"])
def test_unknown_backup_type_names_backup_type(btype: str) -> None:
    msg = _rejected("backup_type", backup_type=btype)
    assert msg.startswith("invalid policy: backup_type:")


@pytest.mark.parametrize(
    "retention",
    [
        {"strategy": "keep-last", "n": -1},
        {"strategy": "gfs", "daily": -3},
        {"strategy": "union", "strategies": [{"strategy": "keep-last", "n": -2}]},
    ],
)
def test_negative_retention_count_names_retention(retention: dict[str, object]) -> None:
    msg = _rejected("retention", retention=retention)
    assert msg.startswith("invalid policy: retention:")
    assert "-" in msg  # the offending value is shown


@pytest.mark.parametrize(
    "retention",
    [{"strategy": "nope"}, {"strategy": "keep-last", "n": 2, "extra": 1}, {"strategy": "keep-last"}, "keep-last", 3],
)
def test_bad_retention_shapes(retention: object) -> None:
    _rejected("retention", retention=retention)


@pytest.mark.parametrize("tz", ["Not/AZone", "Europe/Atlantis", "", "../etc/passwd"])
def test_bad_timezone(tz: str) -> None:
    _rejected("timezone", timezone=tz)


@pytest.mark.parametrize("verify", ["sample:0%", "sample:101%", "sample:10", "sample:%", "some", "ALL", "sample:-5%"])
def test_bad_verify(verify: str) -> None:
    _rejected("verify", verify=verify)


@pytest.mark.parametrize("verify", ["none", "all", "sample:10%", "sample:2.5%", "sample:100%"])
def test_good_verify(verify: str) -> None:
    assert sv.Policy(name="p", sources=["/x"], verify=verify).verify == verify


@pytest.mark.parametrize("compression", ["gzip", "zstd:x", "lz4:1", "zstd:0", "zstd:99", "ZSTD"])
def test_bad_compression(compression: str) -> None:
    _rejected("compression", compression=compression)


def test_out_of_range_zstd_level_message_is_accurate() -> None:
    # "zstd:99" has an integer level; the error must say it is out of range, not "not an integer".
    msg = _rejected("compression", compression="zstd:99")
    assert "must be an integer, not '99'" not in msg, msg


@pytest.mark.parametrize("name", ["", "-lead", ".hidden", "has space", "a/b", "X" * 65, "tab\t", "é"])
def test_bad_name(name: str) -> None:
    _rejected("name", name=name)


def test_other_fields_rejected() -> None:
    _rejected("sources", sources=[])
    _rejected("max_concurrency", max_concurrency=0)
    _rejected("max_concurrency", max_concurrency=1000)
    _rejected("bogus", bogus=1)


def test_several_bad_fields_are_all_named() -> None:
    msg = _rejected("schedule", schedule="nope", backup_type="weekly", timezone="Nowhere/X")
    assert "backup_type:" in msg
    assert "timezone:" in msg


# -- JSON ----------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    p = full_policy()
    text = p.to_json()
    doc = json.loads(text)
    assert doc["retention"]["strategy"] == "union"
    assert doc["schedule"] == "*/15 9-17 * * MON-FRI"
    back = sv.Policy.from_json(text)
    assert back == p
    assert back.retention == p.retention
    assert back.to_json() == text
    # Bytes in, too.
    assert sv.Policy.from_json(text.encode()) == p


def test_minimal_json_round_trip() -> None:
    p = sv.Policy(name="p", sources=["/x"])
    assert sv.Policy.from_json(p.to_json()) == p


def test_from_json_rejects_bad_input_with_config_error() -> None:
    doc = json.loads(full_policy().to_json())
    doc["schedule"] = "99 * * * *"
    with pytest.raises(sv.ConfigError, match="schedule"):
        sv.Policy.from_json(json.dumps(doc))
    doc = json.loads(full_policy().to_json())
    doc["retention"] = {"strategy": "keep-last", "n": -1}
    with pytest.raises(sv.ConfigError, match="retention"):
        sv.Policy.from_json(json.dumps(doc))
    doc = json.loads(full_policy().to_json())
    doc["unknown_field"] = True
    with pytest.raises(sv.ConfigError, match="unknown_field"):
        sv.Policy.from_json(json.dumps(doc))
    with pytest.raises(sv.ConfigError):
        sv.Policy.from_json("{not json")


def test_json_schema_lists_every_field() -> None:
    schema = sv.Policy.model_json_schema()
    props = schema["properties"]
    for f in ("name", "sources", "backup_type", "schedule", "timezone", "retention", "verify", "pre_hooks"):
        assert f in props
    assert set(props["backup_type"]["enum"]) == {"full", "incremental", "differential", "snapshot"}
    assert "name" in schema["required"]
    assert "sources" in schema["required"]


def test_callable_hooks_cannot_be_serialised() -> None:
    p = sv.Policy(name="p", sources=["/x"], pre_hooks=[lambda: None])
    assert callable(p.pre_hooks[0])
    with pytest.raises(sv.ConfigError, match="callables"):
        p.to_json()
    q = sv.Policy(name="q", sources=["/x"], post_hooks=["true", print])
    with pytest.raises(sv.ConfigError, match="callables"):
        q.to_json()


# -- stored in the repository ---------------------------------------------------------------


def test_repository_round_trip_and_reopen(repo_path: str) -> None:
    repo = sv.Repository.init(repo_path, PASSWORD, kdf=FAST_KDF)
    p = full_policy()
    other = sv.Policy(name="home", sources=["/home"], retention={"strategy": "keep-within", "duration": "7d"})
    repo.save_policy(p, now=T0)
    repo.save_policy(other, now=T0)
    assert repo.load_policy("db-prod") == p
    assert repo.policies() == {"db-prod": p, "home": other}

    reopened = sv.Repository.open(repo_path, PASSWORD)
    assert reopened.load_policy("db-prod") == p
    assert reopened.load_policy("db-prod").retention == p.retention
    assert reopened.load_policy("home").retention == KeepWithin(timedelta(days=7))
    assert set(reopened.policies()) == {"db-prod", "home"}


def test_policies_are_stored_encrypted(repo_path: str) -> None:
    repo = sv.Repository.init(repo_path, PASSWORD, kdf=FAST_KDF)
    repo.save_policy(full_policy("secretname"), now=T0)
    files = list((Path(repo_path) / "policies").iterdir())
    assert len(files) == 1
    raw = files[0].read_bytes()
    assert b"secretname" not in raw
    assert b"pg_dump" not in raw
    assert b"/srv/db" not in raw
    with pytest.raises(sv.WrongPassword):
        sv.Repository.open(repo_path, "wrong password")


def test_policies_on_memory_repository(memory_repo: sv.Repository) -> None:
    p = full_policy()
    memory_repo.save_policy(p, now=T0)
    reopened = sv.Repository.open(memory_repo.url, PASSWORD)
    assert reopened.load_policy(p.name) == p


def test_newest_record_per_name_wins(local_repo: sv.Repository) -> None:
    v1 = sv.Policy(name="p", sources=["/a"], backup_type="full")
    v2 = sv.Policy(name="p", sources=["/b"], backup_type="incremental")
    v0 = sv.Policy(name="p", sources=["/old"])
    local_repo.save_policy(v1, now=T0)
    local_repo.save_policy(v2, now=T0 + timedelta(hours=1))
    assert local_repo.load_policy("p") == v2
    # A record saved later but stamped earlier does not win.
    local_repo.save_policy(v0, now=T0 - timedelta(days=1))
    assert local_repo.load_policy("p") == v2
    # Each save is a new, create-only record.
    assert len(list(local_repo.store.list("policies"))) == 3
    assert list(local_repo.policies()) == ["p"]


def test_remove_policy(local_repo: sv.Repository) -> None:
    p = sv.Policy(name="p", sources=["/a"])
    q = sv.Policy(name="q", sources=["/b"])
    local_repo.save_policy(p, now=T0)
    local_repo.save_policy(q, now=T0)
    local_repo.remove_policy("p", now=T0 + timedelta(minutes=1))
    with pytest.raises(sv.PolicyNotFound):
        local_repo.load_policy("p")
    assert local_repo.policies() == {"q": q}
    reopened = sv.Repository.open(local_repo.url, PASSWORD)
    assert reopened.policies() == {"q": q}
    with pytest.raises(sv.PolicyNotFound):
        local_repo.remove_policy("p", now=T0 + timedelta(minutes=2))
    with pytest.raises(sv.PolicyNotFound):
        local_repo.remove_policy("never-saved", now=T0)
    # Saved again after the removal, it is back.
    p2 = sv.Policy(name="p", sources=["/c"])
    local_repo.save_policy(p2, now=T0 + timedelta(minutes=3))
    assert local_repo.load_policy("p") == p2


def test_load_unknown_policy(local_repo: sv.Repository) -> None:
    assert local_repo.policies() == {}
    with pytest.raises(sv.PolicyNotFound):
        local_repo.load_policy("nope")


def test_policy_with_callable_hook_is_not_stored(local_repo: sv.Repository) -> None:
    p = sv.Policy(name="p", sources=["/x"], pre_hooks=[lambda: None])
    with pytest.raises(sv.ConfigError):
        local_repo.save_policy(p, now=T0)
    assert list(local_repo.store.list("policies")) == []


# -- a stored policy this machine cannot read -------------------------------------------------


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the built-in strategies, as on a machine where no plugin is installed."""
    monkeypatch.setattr(retention, "_REGISTERED", {})


def test_save_policy_refuses_a_strategy_that_could_not_be_read_back(
    local_repo: sv.Repository, fresh_registry: None
) -> None:
    p = sv.Policy(name="odd", sources=["/x"], retention=Union([KeepLast(1), KeepOldest(3)]))
    with pytest.raises(sv.UnknownStrategy) as info:
        local_repo.save_policy(p, now=T0)
    assert "KeepOldest" in str(info.value)
    assert "register_strategy" in str(info.value)
    assert list(local_repo.store.list("policies")) == []
    # Registered, it is stored and reads back equal.
    sv.register_strategy(KeepOldest)
    local_repo.save_policy(p, now=T0)
    assert local_repo.load_policy("odd") == p


def test_save_policy_refuses_a_subclass_that_would_read_back_as_its_parent(local_repo: sv.Repository) -> None:
    p = sv.Policy(name="p", sources=["/x"], retention=KeepLastButQuieter(2))
    with pytest.raises(sv.ConfigError, match="reads back as"):
        local_repo.save_policy(p, now=T0)
    assert list(local_repo.store.list("policies")) == []


def test_a_policy_with_an_unavailable_strategy_hides_no_other(
    local_repo: sv.Repository, fresh_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = sv.Policy(name="good", sources=["/a"], retention=KeepLast(2))
    odd = sv.Policy(name="odd", sources=["/b"], retention=KeepOldest(1))
    sv.register_strategy(KeepOldest)
    local_repo.save_policy(good, now=T0)
    local_repo.save_policy(odd, now=T0)
    # Another machine, where the package providing KeepOldest is not installed:
    monkeypatch.setattr(retention, "_REGISTERED", {})
    elsewhere = sv.Repository.open(local_repo.url, PASSWORD)
    assert elsewhere.policies() == {"good": good}
    assert elsewhere.load_policy("good") == good
    [broken] = elsewhere.broken_policies()
    assert broken.name == "odd"
    assert broken.key.startswith("policies/")
    assert isinstance(broken.error, sv.UnknownStrategy)
    with pytest.raises(sv.UnknownStrategy) as info:
        elsewhere.load_policy("odd")
    assert f"'{WIRE_ID}'" in str(info.value)
    assert "register_strategy" in str(info.value)
    assert "'odd'" in str(info.value)
    # Where the strategy is available again, the same record loads.
    sv.register_strategy(KeepOldest)
    assert elsewhere.load_policy("odd") == odd
    assert elsewhere.broken_policies() == []


def test_a_policy_that_cannot_be_read_can_be_removed(
    local_repo: sv.Repository, fresh_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sv.register_strategy(KeepOldest)
    local_repo.save_policy(sv.Policy(name="odd", sources=["/b"], retention=KeepOldest(1)), now=T0)
    monkeypatch.setattr(retention, "_REGISTERED", {})
    local_repo.remove_policy("odd", now=T0 + timedelta(minutes=1))
    assert local_repo.policies() == {}
    assert local_repo.broken_policies() == []
    with pytest.raises(sv.PolicyNotFound):
        local_repo.load_policy("odd")
    with pytest.raises(sv.PolicyNotFound):
        local_repo.remove_policy("odd", now=T0 + timedelta(minutes=2))


def test_a_record_that_does_not_decrypt_is_named_by_its_key(local_repo: sv.Repository) -> None:
    good = sv.Policy(name="good", sources=["/a"])
    local_repo.save_policy(good, now=T0)
    # Authentic and correctly named, but not a policy record; and one whose bytes rotted.
    junk = local_repo.write_sealed("policies", b"not json", POLICY_AD)
    rotten = local_repo.write_sealed("policies", b'{"name": "x", "saved_at": "2026-01-01T00:00:00+00:00"}', POLICY_AD)
    path = Path(local_repo.url) / "policies" / rotten
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert local_repo.policies() == {"good": good}
    broken = local_repo.broken_policies()
    assert sorted(b.key for b in broken) == sorted([f"policies/{junk}", f"policies/{rotten}"])
    assert all(b.name is None and isinstance(b.error, sv.IntegrityError) for b in broken)
    assert local_repo.load_policy("good") == good


def test_a_newer_record_that_does_not_validate_is_not_replaced_by_an_older_one(local_repo: sv.Repository) -> None:
    old = sv.Policy(name="p", sources=["/a"], retention=KeepLast(5))
    local_repo.save_policy(old, now=T0)
    # As a later release might write it: a field this release does not know.
    body = {**json.loads(old.to_json()), "retention": {"strategy": "keep-last", "n": 1, "grace": "1d"}}
    doc = {"name": "p", "saved_at": (T0 + timedelta(hours=1)).isoformat(), "policy": body}
    local_repo.write_sealed("policies", json.dumps(doc).encode(), POLICY_AD)
    assert local_repo.policies() == {}
    [broken] = local_repo.broken_policies()
    assert broken.name == "p"
    assert isinstance(broken.error, sv.IntegrityError)
    with pytest.raises(sv.IntegrityError, match="grace"):
        local_repo.load_policy("p")
