"""Public: retention strategies (``GFS``, ``KeepLast``, ``KeepWithin``, ``KeepTags``, ``Union``),
their base class ``Strategy`` and their registry.

A facade over :mod:`snapvault.policy.retention`, where they are implemented; import from here.
"""

from snapvault.policy.retention import (
    ENTRY_POINT_GROUP,
    GFS,
    Decision,
    KeepLast,
    KeepTags,
    KeepWithin,
    SnapshotLike,
    Strategy,
    Union,
    UnknownStrategy,
    check_loadable,
    format_duration,
    parse_duration,
    register_strategy,
    strategy_from_dict,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "GFS",
    "Decision",
    "KeepLast",
    "KeepTags",
    "KeepWithin",
    "SnapshotLike",
    "Strategy",
    "Union",
    "UnknownStrategy",
    "check_loadable",
    "format_duration",
    "parse_duration",
    "register_strategy",
    "strategy_from_dict",
]
