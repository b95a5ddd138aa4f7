"""``Policy``: what to back up, how, when, how long to keep it, and how to verify it.

A policy is a frozen pydantic model that round-trips through JSON. Stored policies live in the
repository (encrypted), so another machine can run or restore them; there, hooks can only be
shell commands. In the library, hooks may also be Python callables, which are never stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from snapvault.errors import ConfigError
from snapvault.pipeline.codecs import Codec, codec_from_spec
from snapvault.pipeline.patterns import parse_size, tag_rules

__all__ = ["BackupType", "Hook", "Policy", "parse_verify"]

BackupType = Literal["full", "incremental", "differential", "snapshot"]
Hook = str | Callable[[], object]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SAMPLE = re.compile(r"^sample:(\d+(?:\.\d+)?)%$")
# Fields added after policies were first stored, with their defaults: written only when set, so
# a policy that does not use them is stored as before and older versions still read it.
_LATER_FIELDS: dict[str, Any] = {
    "exclude_if_present": [],
    "exclude_caches": False,
    "exclude_larger_than": None,
    "one_file_system": False,
}


def parse_verify(value: str) -> float:
    """Return the fraction of new blobs to verify: 0 for ``none``, 1 for ``all``."""
    if value == "none":
        return 0.0
    if value == "all":
        return 1.0
    m = _SAMPLE.match(value)
    if m is None or not 0 < float(m.group(1)) <= 100:
        raise ConfigError(f"verify must be 'none', 'all' or 'sample:N%' with 0 < N <= 100, not {value!r}")
    return float(m.group(1)) / 100


def _config_error(e: ValidationError) -> ConfigError:
    """One line that names each bad field.

    A strategy that is not installed here keeps its type (UnknownStrategy), so that a reader
    can tell a policy it lacks a plugin for from a policy that is wrong.
    """
    from snapvault.errors import UnknownStrategy

    errors = e.errors()
    causes = [err.get("ctx", {}).get("error") for err in errors]
    # Already one line: our own error, from __init__ (model_validate constructs the model through it).
    if len(errors) == 1 and not errors[0]["loc"] and isinstance(causes[0], ConfigError):
        return causes[0]
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err["loc"]) or "policy"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    message = "invalid policy: " + "; ".join(parts)
    unknown = next((c for c in causes if isinstance(c, UnknownStrategy)), None)
    if unknown is not None:
        return UnknownStrategy(message, wire_id=unknown.wire_id)
    return ConfigError(message)


class Policy(BaseModel):
    """A named backup policy.

    Parameters
    ----------
    name : str
        1-64 characters of letters, digits, ``.``, ``_`` and ``-``.
    sources : list of str
        Paths to back up (at least one).
    exclude : list of str
        gitignore-style patterns (an exclude file's lines are stored here, not its path: a
        stored policy must not depend on a file of one machine).
    exclude_if_present : list of str
        ``NAME`` or ``NAME:HEADER``: a directory holding such a file keeps only that file.
    exclude_caches : bool
        The same for ``CACHEDIR.TAG`` files with the Cache Directory Tagging signature.
    exclude_larger_than : int, optional
        Regular files of more bytes than this are left out (text such as ``"10M"`` is
        accepted and stored as bytes).
    one_file_system : bool
        Do not cross into other file systems below a source (mount points are recorded empty).
    backup_type : {"full", "incremental", "differential", "snapshot"}
        See :meth:`snapvault.Engine.backup` for the semantics of each.
    schedule : str, optional
        A cron expression, validated at construction.
    timezone : str
        IANA timezone the schedule is evaluated in. A :class:`~snapvault.retention.GFS`
        retention buckets in its own ``timezone`` field; give both.
    retention : retention strategy, optional
        A strategy from :mod:`snapvault.retention` (or its dict form).
    compression : str, optional
        ``none``, ``zstd`` or ``zstd:LEVEL`` for blobs this policy writes; default the
        repository's.
    verify : str
        ``none``, ``sample:N%`` or ``all`` of the blobs a backup added, read back afterwards.
    max_concurrency : int, optional
        Encoder threads.
    tags : list of str
        Added to every snapshot (the policy's name is recorded separately).
    pre_hooks, post_hooks : list of str or callable
        Run before and after a backup; shell commands, or (library only) callables. Post-hooks
        always run, also after a failure.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    sources: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    exclude_if_present: list[str] = Field(default_factory=list)
    exclude_caches: bool = False
    exclude_larger_than: int | None = None
    one_file_system: bool = False
    backup_type: BackupType = "incremental"
    schedule: str | None = None
    timezone: str = "UTC"
    retention: Any = None
    compression: str | None = None
    verify: str = "none"
    max_concurrency: int | None = Field(default=None, ge=1, le=256)
    tags: list[str] = Field(default_factory=list)
    pre_hooks: list[Hook] = Field(default_factory=list)
    post_hooks: list[Hook] = Field(default_factory=list)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise _config_error(e) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Policy:
        """A policy from its dict form (as ``model_dump`` gives it); pydantic's other arguments pass through.

        Raises
        ------
        ConfigError
            If a field is missing or invalid (one line naming each bad field), in place of
            pydantic's ``ValidationError``.
        UnknownStrategy
            If the retention strategy is not installed or registered here.
        """
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as e:
            raise _config_error(e) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any) -> Policy:
        """A policy from its JSON form (as ``model_dump_json`` gives it); raises as :meth:`model_validate`."""
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as e:
            raise _config_error(e) from None

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 1-64 characters of letters, digits, '.', '_' and '-', starting alphanumeric")
        return v

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from snapvault.policy import cron

        try:
            return cron.validate(v)
        except ConfigError as e:
            raise ValueError(str(e)) from None

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r}") from None
        return v

    @field_validator("exclude_if_present")
    @classmethod
    def _check_if_present(cls, v: list[str]) -> list[str]:
        try:
            tag_rules(v)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return v

    @field_validator("exclude_larger_than", mode="before")
    @classmethod
    def _check_larger_than(cls, v: Any) -> Any:
        if v is None:
            return v
        try:
            return parse_size(v)
        except ConfigError as e:
            raise ValueError(str(e)) from None

    @field_validator("retention", mode="before")
    @classmethod
    def _check_retention(cls, v: Any) -> Any:
        from snapvault.policy import retention

        if v is None:
            return None
        if isinstance(v, dict):
            # A ConfigError is a ValueError: pydantic reports it as this field's error and keeps
            # the exception itself, so an UnknownStrategy keeps its type (see _config_error).
            return retention.strategy_from_dict(v)
        if hasattr(v, "apply") and hasattr(v, "to_dict"):
            return v
        raise ValueError("must be a retention strategy from snapvault.retention or its dict form")

    @field_validator("compression")
    @classmethod
    def _check_compression(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                codec_from_spec(v)
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("verify")
    @classmethod
    def _check_verify(cls, v: str) -> str:
        try:
            parse_verify(v)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return v

    @field_serializer("retention")
    def _dump_retention(self, v: Any) -> Any:
        return None if v is None else v.to_dict()

    @field_serializer("pre_hooks", "post_hooks")
    def _dump_hooks(self, v: list[Hook]) -> list[str]:
        if any(callable(h) for h in v):
            raise ConfigError(f"policy {self.name!r} has Python callables as hooks; only shell commands can be stored")
        return [str(h) for h in v]

    @property
    def verify_fraction(self) -> float:
        """The fraction of added blobs to verify after a backup."""
        return parse_verify(self.verify)

    @property
    def codec(self) -> Codec | None:
        """The compression codec this policy asks for, if any."""
        return None if self.compression is None else codec_from_spec(self.compression)

    def to_json(self) -> str:
        """JSON text; raises ConfigError if a hook is a callable."""
        self._refuse_callables()
        unset = {k for k, default in _LATER_FIELDS.items() if getattr(self, k) == default}
        return self.model_dump_json(exclude=unset)

    def _refuse_callables(self) -> None:
        # Checked before pydantic serialises: an error raised inside a serializer comes out
        # wrapped in pydantic's own exception type.
        if any(callable(h) for h in (*self.pre_hooks, *self.post_hooks)):
            raise ConfigError(f"policy {self.name!r} has Python callables as hooks; only shell commands can be stored")

    @classmethod
    def from_json(cls, text: str | bytes) -> Policy:
        """Parse a policy from JSON text."""
        return cls.model_validate_json(text)
