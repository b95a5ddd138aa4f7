"""A catalog of snapshots' entries for notebooks: one row per path per snapshot.

Nouns:

- A *row* (:class:`CatalogRow`) is one entry of one snapshot: the snapshot's ID and time,
  the entry's absolute path, its type, size (0 for anything but a regular file) and
  modification time.
- A *catalog* (:class:`Catalog`) is the rows of some snapshots, oldest snapshot first and
  each depth first in name order. It is read lazily, one directory's tree at a time, each
  time it is iterated, so listing a repository of millions of files holds one row at a
  time unless a table is asked for: :meth:`Catalog.to_pandas` and :meth:`Catalog.to_arrow`
  build one, with pandas or pyarrow when installed (neither is a dependency of snapvault).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from snapvault.errors import ConfigError
from snapvault.maintenance.browse import TreeReader, walk_snapshot
from snapvault.repository.manifest import Manifest

__all__ = ["COLUMNS", "Catalog", "CatalogRow"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The columns of :meth:`Catalog.to_pandas` and :meth:`Catalog.to_arrow`, in order.
COLUMNS = ("snapshot", "snapshot_time", "path", "type", "size", "mtime")


@dataclass(frozen=True)
class CatalogRow:
    """One entry of one snapshot.

    Attributes
    ----------
    snapshot : str
        The full ID of the snapshot.
    snapshot_time : datetime
        When the snapshot was taken (timezone-aware).
    path : str
        The entry's absolute path in the snapshot (``/home/me/docs/a.txt``).
    type : str
        ``file``, ``dir``, ``symlink``, ``fifo``, ``socket``, ``chardev`` or ``blockdev``.
    size : int
        Bytes of a regular file; 0 for every other type.
    mtime : datetime
        The entry's modification time (UTC, nanoseconds kept to the microsecond).
    """

    snapshot: str
    snapshot_time: datetime
    path: str
    type: str
    size: int
    mtime: datetime


class Catalog:
    """The rows of some snapshots, read lazily each time it is iterated.

    Made by :meth:`snapvault.Repository.catalog`. Iterate it for :class:`CatalogRow` objects,
    or build a table with :meth:`to_pandas` or :meth:`to_arrow`.
    """

    def __init__(self, repo: TreeReader, manifests: Iterable[Manifest], path: str = "") -> None:
        self._repo = repo
        self._manifests = list(manifests)
        self._path = path

    @property
    def snapshots(self) -> list[Manifest]:
        """The snapshots it lists, oldest first."""
        return list(self._manifests)

    def __iter__(self) -> Iterator[CatalogRow]:
        for m in self._manifests:
            for rel, node in walk_snapshot(self._repo, m, self._path):
                yield CatalogRow(
                    snapshot=m.id,
                    snapshot_time=m.time,
                    path=f"/{rel}",
                    type=node.type,
                    size=node.size if node.type == "file" else 0,
                    # A timedelta from the epoch, not fromtimestamp: no float rounding, and
                    # times before 1970 or past 2038 work on every platform.
                    mtime=_EPOCH + timedelta(microseconds=node.mtime_ns // 1000),
                )

    def __repr__(self) -> str:
        return f"Catalog({len(self._manifests)} snapshots, path={self._path or '/'!r})"

    def _columns(self) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for row in self:
            for c in COLUMNS:
                cols[c].append(getattr(row, c))
        return cols

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame`` with the columns of :data:`COLUMNS`.

        ``snapshot_time`` and ``mtime`` are UTC ``datetime64`` columns, ``size`` is
        ``int64``, ``type`` is categorical and ``snapshot`` and ``path`` are strings.

        Raises
        ------
        ConfigError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError("Catalog.to_pandas needs pandas: pip install pandas") from None
        cols = self._columns()
        return pd.DataFrame(
            {
                "snapshot": pd.Series(cols["snapshot"], dtype="string"),
                "snapshot_time": pd.to_datetime(pd.Series(cols["snapshot_time"], dtype=object), utc=True),
                "path": pd.Series(cols["path"], dtype="string"),
                "type": pd.Categorical(cols["type"]),
                "size": pd.Series(cols["size"], dtype="int64"),
                "mtime": pd.to_datetime(pd.Series(cols["mtime"], dtype=object), utc=True),
            },
            columns=list(COLUMNS),
        )

    def to_arrow(self) -> Any:
        """The rows as a ``pyarrow.Table`` with the columns of :data:`COLUMNS`.

        ``snapshot_time`` and ``mtime`` are ``timestamp[us, tz=UTC]``, ``size`` is ``int64``
        and ``type`` is dictionary-encoded.

        Raises
        ------
        ConfigError
            If pyarrow is not installed.
        """
        try:
            import pyarrow as pa
        except ImportError:
            raise ConfigError("Catalog.to_arrow needs pyarrow: pip install pyarrow") from None
        cols = self._columns()
        ts = pa.timestamp("us", tz="UTC")
        return pa.table(
            {
                "snapshot": pa.array(cols["snapshot"], pa.string()),
                "snapshot_time": pa.array(cols["snapshot_time"], ts),
                "path": pa.array(cols["path"], pa.string()),
                "type": pa.array(cols["type"], pa.string()).dictionary_encode(),
                "size": pa.array(cols["size"], pa.int64()),
                "mtime": pa.array(cols["mtime"], ts),
            }
        )
