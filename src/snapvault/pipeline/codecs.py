"""Compression codecs: frozen values with stable wire IDs, a JSON form and a spec string.

Each encoded blob starts with one byte, the codec's wire ID, so a reader never has to know
which codec wrote it. The repository config names its default codec in JSON
(``{"codec": "zstd", "level": 3}``); options and policies name it as a spec (``"zstd:3"``).

Compatibility rule: a wire ID and a codec name, once released, always mean the same transform
and the same JSON form. A codec whose transform would change gets a new ID and a new name. An
ID that is no longer assigned is *retired*: it stays in :data:`RETIRED_CODECS`, with the name
it had, for ever, so no later codec can take either and mislead a reader of old blobs. A reader
refuses an ID it does not know.

The set is closed on purpose: a repository must restore with snapvault alone, so there is no
registry for other packages (docs/decisions.md). A new codec needs a wire ID, an entry in
:data:`CODEC_TABLE`, a branch in :func:`decode` and a row in docs/format.md.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, Self

import zstandard

from snapvault.errors import ConfigError, IntegrityError

__all__ = [
    "CODEC_TABLE",
    "RETIRED_CODECS",
    "Codec",
    "CodecTable",
    "NoCompression",
    "Zstd",
    "build_codec_table",
    "codec_from_dict",
    "codec_from_spec",
    "decode",
    "decode_pieces",
    "encode",
]

# A chunk that shrinks by less than this fraction is stored raw: the space saved would not pay
# for the decompression on every restore.
_MIN_SAVING = 1 / 32

# A zstd level in a spec: ASCII digits with an optional sign.
_LEVEL = re.compile(r"[+-]?[0-9]+")

#: Wire IDs no codec may take, each with the name it had (which is reserved too). An entry is
#: never removed: blobs written under a retired ID may still exist somewhere.
RETIRED_CODECS: Mapping[int, str] = MappingProxyType({})


class Codec(Protocol):
    """A reversible transform of blob plaintext: a frozen value with a wire ID and a JSON form.

    Attributes
    ----------
    wire_id : int
        The byte that starts every frame this codec writes (0 to 255).
    name : str
        The name in the JSON form (``{"codec": name, ...}``) and in the spec string.
    frame_prefix : bytes
        ``bytes([wire_id])``, built once so that framing a blob costs no allocation for it.
    spec_forms : tuple of str
        The spec strings this codec accepts, for error messages (``"zstd:LEVEL"``).
    """

    wire_id: ClassVar[int]
    name: ClassVar[str]
    frame_prefix: ClassVar[bytes]
    spec_forms: ClassVar[tuple[str, ...]]

    def compress(self, data: bytes | memoryview) -> bytes | None:
        """Return the compressed form, or None where compression does not pay."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """Build the codec from its JSON form (``d["codec"]`` is already known to match)."""

    @classmethod
    def from_spec(cls, arg: str | None) -> Self:
        """Build the codec from the part of a spec after ``name:``, or None if there is none."""


@dataclass(frozen=True)
class NoCompression:
    """Store blobs as they are."""

    wire_id: ClassVar[int] = 0
    name: ClassVar[str] = "none"
    frame_prefix: ClassVar[bytes] = bytes([wire_id])
    spec_forms: ClassVar[tuple[str, ...]] = ("none",)

    def compress(self, data: bytes | memoryview) -> bytes | None:
        """Return None: the data is always stored raw."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"codec": "none"}``."""
        return {"codec": self.name}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """Return ``NoCompression()``; other keys are ignored, as they always were."""
        return cls()

    @classmethod
    def from_spec(cls, arg: str | None) -> Self:
        """Return ``NoCompression()`` for the spec ``none``; ``none:X`` is refused."""
        if arg is not None:
            raise ConfigError(f"compression 'none' takes no level, not {arg!r}")
        return cls()


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # ZstdCompressor objects are not thread-safe; one per thread and level is cheap to keep.
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "zc", None)
    if cache is None:
        cache = _local.zc = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "zd", None)
    if d is None:
        d = _local.zd = zstandard.ZstdDecompressor()
    return d


@dataclass(frozen=True)
class Zstd:
    """Zstandard at a fixed level, skipped for data it cannot shrink.

    Parameters
    ----------
    level : int
        Zstandard level, 1 to 22 (negative fast levels down to -7 are allowed).
    """

    level: int = 3
    wire_id: ClassVar[int] = 1
    name: ClassVar[str] = "zstd"
    frame_prefix: ClassVar[bytes] = bytes([wire_id])
    spec_forms: ClassVar[tuple[str, ...]] = ("zstd", "zstd:LEVEL")

    def __post_init__(self) -> None:
        if not isinstance(self.level, int) or not -7 <= self.level <= 22 or self.level == 0:
            raise ConfigError("zstd level must be an integer in [-7, -1] or [1, 22]")

    def compress(self, data: bytes | memoryview) -> bytes | None:
        """Return the zstd frame (content size set), or None if it saves less than 1/32."""
        # No trial compression of a sample first (borg's "auto"): zstd itself gives up on
        # incompressible input at several GB/s, while a small sample misjudges data whose
        # repeats lie further apart than the sample (measured: 18% lost on database pages).
        n = len(data)
        out: bytes = _compressor(self.level).compress(data)
        return out if len(out) <= n * (1 - _MIN_SAVING) else None

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"codec": "zstd", "level": level}``."""
        return {"codec": self.name, "level": self.level}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """Build from ``{"codec": "zstd", "level": N}``; a missing level means 3."""
        level = d.get("level", 3)
        # bool is an int to Python, but `"level": true` in a config is damage, not level 1.
        if not isinstance(level, int) or isinstance(level, bool):
            raise ConfigError(f"zstd level must be an integer, not {level!r}")
        return cls(level=level)

    @classmethod
    def from_spec(cls, arg: str | None) -> Self:
        """Build from ``zstd`` (level 3) or ``zstd:LEVEL``."""
        # "zstd:" has always meant the default level; a stored policy may say it.
        if not arg:
            return cls()
        # Not int(arg) alone: it also takes " 3", "3_0" and non-ASCII digits.
        if _LEVEL.fullmatch(arg) is None:
            raise ConfigError(f"compression level must be an integer, not {arg!r}")
        return cls(level=int(arg))


@dataclass(frozen=True)
class CodecTable:
    """The codecs this release knows, by wire ID and by name; build it with :func:`build_codec_table`.

    Attributes
    ----------
    by_id : Mapping of int to Codec class
    by_name : Mapping of str to Codec class
    retired : Mapping of int to str
        Retired wire IDs and the names they had; neither is ever assigned again.
    """

    by_id: Mapping[int, type[Codec]]
    by_name: Mapping[str, type[Codec]]
    retired: Mapping[int, str]

    def from_id(self, wire_id: int) -> type[Codec]:
        """Return the codec class with this wire ID.

        A frame's wire ID names a transform, not a codec value (a zstd frame does not say
        which level wrote it), hence a class.

        Raises
        ------
        ConfigError
            If the ID is retired or unknown.
        """
        cls = self.by_id.get(wire_id)
        if cls is not None:
            return cls
        if wire_id in self.retired:
            raise ConfigError(f"codec wire ID {wire_id} ({self.retired[wire_id]}) is retired")
        raise ConfigError(f"unknown codec wire ID {wire_id!r}; known: {sorted(self.by_id)}")

    def from_name(self, name: str) -> type[Codec]:
        """Return the codec class called ``name``.

        Raises
        ------
        ConfigError
            If the name is retired or unknown.
        """
        cls = self.by_name.get(name)
        if cls is not None:
            return cls
        if name in self.retired.values():
            raise ConfigError(f"compression codec {name!r} is retired")
        known = ", ".join(repr(n) for n in self.by_name)
        raise ConfigError(f"unknown compression codec {name!r}; known: {known}")

    def spec_forms(self) -> str:
        """The accepted spec strings, for messages: ``'none', 'zstd' or 'zstd:LEVEL'``."""
        forms = [repr(f) for cls in self.by_id.values() for f in cls.spec_forms]
        return forms[0] if len(forms) == 1 else ", ".join(forms[:-1]) + " or " + forms[-1]


def build_codec_table(codecs: Iterable[type[Codec]], retired: Mapping[int, str] = RETIRED_CODECS) -> CodecTable:
    """Index ``codecs`` by wire ID and name, refusing any clash.

    Raises
    ------
    ConfigError
        If two codecs share a wire ID or a name, a codec takes a retired ID or name, or a wire
        ID is not one byte (or its ``frame_prefix`` is not that byte).
    """
    by_id: dict[int, type[Codec]] = {}
    by_name: dict[str, type[Codec]] = {}
    for cls in codecs:
        wire, name = cls.wire_id, cls.name
        if not isinstance(wire, int) or isinstance(wire, bool) or not 0 <= wire <= 255:
            raise ConfigError(f"codec {name!r}: wire ID {wire!r} is not one byte")
        if cls.frame_prefix != bytes([wire]):
            raise ConfigError(f"codec {name!r}: frame_prefix must be bytes([{wire}])")
        if wire in retired or name in retired.values():
            raise ConfigError(f"codec {name!r} takes wire ID {wire} or its name from a retired codec")
        if wire in by_id:
            raise ConfigError(f"duplicate codec wire ID {wire}: {by_id[wire].name!r} and {name!r}")
        if name in by_name:
            raise ConfigError(f"duplicate codec name {name!r}: wire IDs {by_name[name].wire_id} and {wire}")
        by_id[wire] = cls
        by_name[name] = cls
    return CodecTable(MappingProxyType(by_id), MappingProxyType(by_name), MappingProxyType(dict(retired)))


#: Every codec this release reads and writes. Built at import, so a clash fails every import.
CODEC_TABLE = build_codec_table([NoCompression, Zstd])


def codec_from_dict(d: Mapping[str, Any]) -> Codec:
    """Build a codec from its JSON form, ``{"codec": name, ...}``.

    Raises
    ------
    ConfigError
        If the form is not a mapping, names no known codec, or has bad parameters.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"a compression codec is a JSON object, not {d!r}")
    name = d.get("codec")
    if not isinstance(name, str):
        raise ConfigError(f"compression codec has no name: {dict(d)!r}")
    return CODEC_TABLE.from_name(name).from_dict(d)


def codec_from_spec(spec: str) -> Codec:
    """Parse a compression spec: ``none``, ``zstd`` (level 3) or ``zstd:LEVEL``.

    This is the one parser for the CLI's ``--compression`` and a policy's ``compression``.

    Raises
    ------
    ConfigError
        If ``spec`` has another form or the level is out of range; the message lists the
        accepted forms.

    Examples
    --------
    >>> codec_from_spec("zstd:19")
    Zstd(level=19)
    >>> codec_from_spec("none")
    NoCompression()
    """
    if not isinstance(spec, str):
        raise ConfigError(f"compression must be {CODEC_TABLE.spec_forms()}, not {spec!r}")
    name, colon, arg = spec.partition(":")
    cls = CODEC_TABLE.by_name.get(name)
    if cls is None:
        raise ConfigError(f"compression must be {CODEC_TABLE.spec_forms()}, not {spec!r}")
    try:
        return cls.from_spec(arg if colon else None)
    except ConfigError as e:
        raise ConfigError(f"compression {spec!r}: {e} (use {CODEC_TABLE.spec_forms()})") from None


_WIRE_NONE = NoCompression.frame_prefix


def encode(codec: Codec, data: bytes | memoryview) -> bytes:
    """Return ``data`` framed with the wire ID of the codec that was actually used."""
    out = codec.compress(data)
    # bytes + any buffer is one copy; bytes(data) first would be a second one.
    if out is None:
        return _WIRE_NONE + data
    return codec.frame_prefix + out


def decode_pieces(frame: bytes | memoryview, *, size: int, piece: int = 1 << 20) -> Iterator[bytes]:
    """Invert :func:`encode` a piece of at most ``piece`` bytes at a time; the whole must be
    exactly ``size`` bytes (checked against a zstd frame's declared size before anything is
    decompressed, and against what comes out).

    For a caller that reads a large plaintext once in order and need not hold it whole (a
    backup's cursor over a parent tree of hundreds of thousands of entries).
    """
    if len(frame) < 1:
        raise IntegrityError("empty blob frame")
    wire = frame[0]
    body = memoryview(frame)[1:]
    if wire == NoCompression.wire_id:
        if len(body) != size:
            raise IntegrityError("blob length differs from the index")
        for i in range(0, size, piece):
            yield bytes(body[i : i + piece])
        return
    if wire != Zstd.wire_id:
        decode(frame, max_size=0)  # raises the error decode gives for this wire ID
        raise IntegrityError(f"unknown codec wire ID {wire}")  # pragma: no cover - decode raised
    try:
        params = zstandard.get_frame_parameters(body)
        if params.content_size != size:
            raise IntegrityError("compressed blob declares a size other than the index's")
        total = 0
        with zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=False) as reader:
            while True:
                out = reader.read(piece)
                if not out:
                    break
                total += len(out)
                if total > size:
                    raise IntegrityError("blob decompresses past its declared size")
                yield out
    except zstandard.ZstdError as e:
        raise IntegrityError(f"blob does not decompress: {e}") from e
    if total != size:
        raise IntegrityError("blob length differs from the index")


def decode(frame: bytes | memoryview, *, max_size: int) -> bytes:
    """Invert :func:`encode`; refuse output larger than ``max_size`` bytes."""
    if len(frame) < 1:
        raise IntegrityError("empty blob frame")
    wire = frame[0]
    # A view, not a slice: slicing bytes would copy the whole frame (up to 8 MiB) only to
    # read it once.
    body = memoryview(frame)[1:]
    # Direct comparisons rather than a lookup in CODEC_TABLE: this runs once per blob, and
    # the set is closed. test_codecs checks that every codec in the table decodes here.
    if wire == NoCompression.wire_id:
        if len(body) > max_size:
            raise IntegrityError("raw blob is larger than allowed")
        return bytes(body)
    if wire == Zstd.wire_id:
        try:
            params = zstandard.get_frame_parameters(body)
            if params.content_size > max_size or params.content_size < 0:
                raise IntegrityError("compressed blob declares an implausible size")
            out: bytes = _decompressor().decompress(body, max_output_size=max_size)
        except zstandard.ZstdError as e:
            raise IntegrityError(f"blob does not decompress: {e}") from e
        return out
    if wire in CODEC_TABLE.retired:
        raise IntegrityError(f"retired codec wire ID {wire} ({CODEC_TABLE.retired[wire]})")
    raise IntegrityError(f"unknown codec wire ID {wire}")
