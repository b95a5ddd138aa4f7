"""Streaming content-defined chunking over FastCDC 2020 (pyfastcdc).

The chunker is fed buffers and returns the chunks whose end is final. FastCDC decides every
cut point from the bytes after the previous cut only, so holding back the last, unfinished
chunk and prepending it to the next buffer yields exactly the chunks of the whole input,
whatever the buffer sizes. That keeps memory bounded by ``max_size`` plus one buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyfastcdc import FastCDC

from snapvault.errors import ConfigError

__all__ = ["ChunkerParams", "StreamChunker", "chunk_bytes"]

#: Wire ID of the only chunking algorithm so far. Never reuse a retired ID.
FASTCDC_2020 = "fastcdc-2020"


@dataclass(frozen=True)
class ChunkerParams:
    """Parameters of content-defined chunking, recorded in the repository config.

    Parameters
    ----------
    min_size, avg_size, max_size : int
        Bounds on chunk lengths in bytes. FastCDC's mean chunk is about ``avg_size + min_size``.
    normalization : int
        FastCDC's normalised-chunking level, 0 to 3.
    seed : int
        63-bit value that alters the gear table. Derived from the repository key so that chunk
        lengths do not fingerprint known files across repositories; 0 means the stock table.
    """

    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 8 * 1024 * 1024
    normalization: int = 1
    seed: int = 0
    algorithm: str = FASTCDC_2020

    def __post_init__(self) -> None:
        if self.algorithm != FASTCDC_2020:
            raise ConfigError(f"unknown chunker algorithm {self.algorithm!r}")
        if not 64 <= self.min_size <= 1 << 20:
            raise ConfigError("chunker min_size must be within [64, 1 MiB]")
        if not 256 <= self.avg_size <= 4 << 20:
            raise ConfigError("chunker avg_size must be within [256, 4 MiB]")
        if not max(1024, self.avg_size) <= self.max_size <= 16 << 20:
            raise ConfigError("chunker max_size must be within [max(1 KiB, avg_size), 16 MiB]")
        for field_name in ("min_size", "avg_size", "max_size"):
            v = getattr(self, field_name)
            if v & (v - 1):
                # pyfastcdc can cut one byte short of an odd min_size; powers of two are what
                # FastCDC's masks are built for and what every other tool uses.
                raise ConfigError(f"chunker {field_name} must be a power of two, not {v}")
        if self.min_size > self.avg_size:
            raise ConfigError("chunker min_size must not exceed avg_size")
        if self.normalization not in (0, 1, 2, 3):
            raise ConfigError("chunker normalization must be 0, 1, 2 or 3")
        if not 0 <= self.seed < 1 << 63:
            # pyfastcdc shifts the seed left by one into a uint64.
            raise ConfigError("chunker seed must be an integer in [0, 2**63)")

    def to_dict(self, *, with_seed: bool = False) -> dict[str, Any]:
        """Return the JSON form; the seed is secret and left out unless asked for."""
        d: dict[str, Any] = {
            "algorithm": self.algorithm,
            "min_size": self.min_size,
            "avg_size": self.avg_size,
            "max_size": self.max_size,
            "normalization": self.normalization,
        }
        if with_seed:
            d["seed"] = self.seed
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, seed: int | None = None) -> ChunkerParams:
        """Build parameters from their JSON form, optionally supplying the secret seed."""
        try:
            return cls(
                algorithm=str(d["algorithm"]),
                min_size=int(d["min_size"]),
                avg_size=int(d["avg_size"]),
                max_size=int(d["max_size"]),
                normalization=int(d["normalization"]),
                seed=int(d.get("seed", 0) if seed is None else seed),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise ConfigError(f"invalid chunker parameters: {e}") from e

    def new(self) -> FastCDC:
        """Return a fresh (not thread-safe) FastCDC instance for these parameters."""
        return FastCDC(
            self.avg_size,
            min_size=self.min_size,
            max_size=self.max_size,
            normalized_chunking=self.normalization,  # type: ignore[arg-type]
            seed=self.seed,
        )


class StreamChunker:
    """Incremental chunker: ``feed`` buffers, then ``finish``.

    Each call returns ``memoryview`` slices that stay valid after later calls (they point at
    buffers this object no longer touches).
    """

    def __init__(self, params: ChunkerParams) -> None:
        self._params = params
        self._cdc = params.new()
        self._carry: bytes = b""

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Add ``data``; return the chunks that are now complete."""
        if not data:
            return []
        buf = self._carry + data if self._carry else data
        view = memoryview(buf)
        cuts = [(c.offset, c.length) for c in self._cdc.cut_buf(view)]
        if not cuts:
            return []
        last_off, last_len = cuts[-1]
        # The final cut may only mark the end of this buffer, not a content boundary.
        self._carry = bytes(view[last_off : last_off + last_len])
        return [view[o : o + n] for o, n in cuts[:-1]]

    def finish(self) -> list[memoryview]:
        """Return the remaining chunk, if any."""
        carry, self._carry = self._carry, b""
        return [memoryview(carry)] if carry else []


def chunk_bytes(params: ChunkerParams, data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    """Chunk a whole buffer at once; equal to feeding it in any pieces."""
    view = memoryview(data)
    for c in params.new().cut_buf(view):
        yield view[c.offset : c.offset + c.length]
