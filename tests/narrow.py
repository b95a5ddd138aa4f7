"""A view of an object that offers only the members a ``Protocol`` declares.

A consumer handed ``narrow(repo, SinkRepository)`` fails with AttributeError the moment it
reaches for anything its interface does not name (``repo.store``, ``repo.master_keys``, a private
attribute): what the Protocol says a consumer uses is then what it uses, checked at run time.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol


def protocol_members(protocol: type) -> frozenset[str]:
    """The public members a Protocol declares, its bases' included."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base in (object, Protocol, Generic) or not getattr(base, "_is_protocol", False):
            continue
        names.update(n for n in vars(base) if not n.startswith("_"))
    return frozenset(names)


class Narrow:
    """Forwards the members of one Protocol to ``target``; anything else is an AttributeError."""

    def __init__(self, target: object, protocol: type) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_protocol", protocol)
        object.__setattr__(self, "_allowed", protocol_members(protocol))
        object.__setattr__(self, "used", set())

    def __getattr__(self, name: str) -> Any:
        if name not in self._allowed:
            raise AttributeError(f"{name!r} is not part of {self._protocol.__name__}")
        self.used.add(name)
        return getattr(self._target, name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{self._protocol.__name__} offers no attribute to set ({name!r})")


def narrow(target: object, protocol: type) -> Any:
    """``target`` seen through ``protocol`` only (typed Any so it passes where the Protocol is asked)."""
    return Narrow(target, protocol)
