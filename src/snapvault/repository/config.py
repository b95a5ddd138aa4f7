"""Repository config, master keys and password-wrapped key files."""

from __future__ import annotations

import base64
import json
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from snapvault.errors import ConfigError, IntegrityError, UnsupportedFormat, WrongPassword
from snapvault.pipeline.chunker import ChunkerParams
from snapvault.pipeline.codecs import Codec, Zstd, codec_from_dict
from snapvault.pipeline.crypto import SEALERS, make_sealer
from snapvault.pipeline.ids import object_hash

__all__ = [
    "FORMAT_VERSION",
    "KDF_MAX_ITERATIONS",
    "KDF_MAX_LANES",
    "KDF_MAX_MEMORY_KIB",
    "KDF_MEMORY_LIMIT_KIB",
    "MAX_LABEL_CHARS",
    "KdfParams",
    "KeyFileHeader",
    "MasterKeys",
    "RepoConfig",
    "check_label",
    "kdf_cost",
    "kdf_memory_kib",
    "open_key_file",
    "open_plain_key_file",
    "plain_key_file",
    "read_key_file_header",
    "seal_key_file",
]

FORMAT_NAME = "snapvault-repository"
FORMAT_VERSION = 1
_KEY_AD = b"snapvault key file"


def b64e(b: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(b).decode("ascii")


def b64d(s: object) -> bytes:
    """Invert :func:`b64e`, raising IntegrityError on bad input."""
    if not isinstance(s, str):
        raise IntegrityError("expected base64 text")
    try:
        out = base64.b64decode(s, validate=True)
    except ValueError as e:
        raise IntegrityError(f"bad base64: {e}") from e
    # Refuse non-canonical text (unused low bits set), so every change to stored text matters.
    if base64.b64encode(out).decode("ascii") != s:
        raise IntegrityError("base64 text is not canonical")
    return out


@dataclass(frozen=True)
class RepoConfig:
    """The plain, create-only description of a repository.

    Parameters
    ----------
    repository_id : str
        Random 32-byte hex ID.
    encryption : str
        ``aes-256-gcm`` (default), ``chacha20-poly1305`` or ``none``.
    chunker : ChunkerParams
        Chunking parameters without the seed (the seed is secret, in the master keys).
    compression : Codec
        Default codec for new blobs.
    pack_size : int
        Target size of pack files in bytes.
    """

    repository_id: str
    encryption: str = "aes-256-gcm"
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    compression: Codec = field(default_factory=Zstd)
    pack_size: int = 16 << 20
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.encryption not in SEALERS:
            raise ConfigError(f"unknown encryption {self.encryption!r}; known: {', '.join(SEALERS)}")
        if not 1 << 20 <= self.pack_size <= 1 << 30:
            raise ConfigError("pack_size must be within [1 MiB, 1 GiB]")

    def to_bytes(self) -> bytes:
        """Canonical JSON."""
        doc = {
            "format": FORMAT_NAME,
            "version": self.version,
            "id": self.repository_id,
            "encryption": self.encryption,
            "chunker": self.chunker.to_dict(),
            "compression": self.compression.to_dict(),
            "pack_size": self.pack_size,
        }
        return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> RepoConfig:
        """Parse a config; refuse unknown formats and versions."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise IntegrityError(f"repository config is not JSON: {e!r}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise UnsupportedFormat("not a snapvault repository config")
        if doc.get("version") != FORMAT_VERSION:
            raise UnsupportedFormat(
                f"repository format version {doc.get('version')!r} is not supported "
                f"(this release reads version {FORMAT_VERSION})"
            )
        try:
            return cls(
                repository_id=str(doc["id"]),
                encryption=str(doc["encryption"]),
                chunker=ChunkerParams.from_dict(doc["chunker"]),
                compression=codec_from_dict(doc["compression"]),
                pack_size=int(doc["pack_size"]),
                version=int(doc["version"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError, OverflowError) as e:
            if isinstance(e, ConfigError):
                raise UnsupportedFormat(f"repository config: {e}") from e
            raise IntegrityError(f"repository config is malformed: {e}") from e


#: The most retired encryption keys a master key may carry (rotations not yet rewritten).
MAX_RETIRED_KEYS = 16


@dataclass(frozen=True)
class MasterKeys:
    """The repository's secrets.

    ``id_key`` and ``chunker_seed`` decide blob IDs and chunk boundaries; two repositories that
    share them deduplicate against each other. ``encryption_key`` seals everything.
    """

    encryption_key: bytes = field(repr=False)
    id_key: bytes = field(repr=False)
    chunker_seed: int = field(repr=False)
    config_hash: bytes = b""
    #: Encryption keys a rotation retired, newest first: still opening what they sealed until
    #: ``key rotate --rewrite`` has re-sealed it all and drops them.
    retired_keys: tuple[bytes, ...] = field(default=(), repr=False)

    def to_json(self) -> bytes:
        """Serialise for sealing into a key file (or the config of an unencrypted repo)."""
        doc: dict[str, Any] = {
            "encryption_key": b64e(self.encryption_key),
            "id_key": b64e(self.id_key),
            "chunker_seed": self.chunker_seed,
            "config_hash": self.config_hash.hex(),
        }
        if self.retired_keys:
            doc["retired_encryption_keys"] = [b64e(k) for k in self.retired_keys]
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> MasterKeys:
        """Invert :meth:`to_json`."""
        try:
            d = json.loads(data)
            keys = cls(
                encryption_key=b64d(d["encryption_key"]),
                id_key=b64d(d["id_key"]),
                chunker_seed=int(d["chunker_seed"]),
                config_hash=bytes.fromhex(d["config_hash"]),
                retired_keys=tuple(b64d(k) for k in d.get("retired_encryption_keys", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError, OverflowError) as e:
            if isinstance(e, IntegrityError):
                raise
            raise IntegrityError(f"master key is malformed: {e}") from e
        if len(keys.encryption_key) != 32 or len(keys.id_key) != 32 or any(len(k) != 32 for k in keys.retired_keys):
            raise IntegrityError("master key has the wrong length")
        if len(keys.retired_keys) > MAX_RETIRED_KEYS:
            raise IntegrityError(f"master key lists more than {MAX_RETIRED_KEYS} retired keys")
        if not 0 <= keys.chunker_seed < 1 << 63:
            raise IntegrityError("master key has a chunker_seed outside [0, 2**63)")
        return keys

    def check_config(self, config_bytes: bytes) -> None:
        """Raise IntegrityError unless ``config_bytes`` is the config these keys were made for."""
        if self.config_hash and object_hash(config_bytes) != self.config_hash:
            raise IntegrityError("repository config was altered since the key was made", key="config")


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters for deriving a key-file key from a password.

    The defaults (19 MiB, 2 passes, 1 lane) are one of OWASP's equivalent recommended Argon2id
    settings: about 22 ms here, paid on every open, so the CLI stays quick, and 19 MiB rather
    than the 46 MiB of the one-pass setting at the peak of every command; pass stronger ones (RFC 9106's
    ``KdfParams(65536, 3, 4)``, say) to :meth:`Repository.init` for a key that guards more.
    """

    memory_kib: int = 19 * 1024
    iterations: int = 2
    lanes: int = 1

    def __post_init__(self) -> None:
        if self.memory_kib < 8 * self.lanes or self.iterations < 1 or self.lanes < 1:
            raise ConfigError("Argon2id needs memory_kib >= 8 * lanes, iterations >= 1, lanes >= 1")

    def derive(self, password: bytes, salt: bytes) -> bytes:
        """Derive a 32-byte key."""
        return Argon2id(
            salt=salt, length=32, iterations=self.iterations, lanes=self.lanes, memory_cost=self.memory_kib
        ).derive(password)


#: The format's ceiling on a key file's Argon2 parameters (docs/format.md, "Limits"): readers
#: refuse a key file above any of them, so writers never write one.
KDF_MAX_MEMORY_KIB = 4 << 20
KDF_MAX_ITERATIONS = 64
KDF_MAX_LANES = 64

#: The longest clear-text ``label`` a key file may carry, in characters.
MAX_LABEL_CHARS = 256
# Longer than any ISO 8601 time a writer produces; a longer ``created`` is refused unparsed.
_MAX_CREATED_CHARS = 64


def _label_error(label: object) -> str | None:
    """Why ``label`` is not a valid key-file label (None when it is)."""
    if not isinstance(label, str):
        return "label is not text"
    if len(label) > MAX_LABEL_CHARS:
        return f"label is longer than {MAX_LABEL_CHARS} characters"
    # Labels are printed as they are (``key list``): no character may move the cursor, end the
    # line or drive a terminal.
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in label):
        return "label holds a control character or a line break"
    return None


def check_label(label: str) -> str:
    """Return ``label`` if a key file may carry it.

    Raises
    ------
    ConfigError
        If it is not text, is longer than :data:`MAX_LABEL_CHARS` characters, or holds a
        control character (Unicode category Cc) or a line or paragraph separator.
    """
    error = _label_error(label)
    if error is not None:
        raise ConfigError(f"key {error}")
    return label


def _created_text(created: datetime) -> str:
    if created.tzinfo is None or created.utcoffset() is None:
        raise ConfigError("a key file's creation time must be timezone-aware (a datetime with tzinfo)")
    return created.astimezone(UTC).isoformat().replace("+00:00", "Z")


def seal_key_file(
    keys: MasterKeys,
    password: bytes,
    kdf: KdfParams,
    *,
    salt: bytes,
    random: bytes,
    aead: str,
    label: str = "",
    created: datetime | None = None,
) -> bytes:
    """Return the bytes of a key file holding ``keys`` under ``password``.

    ``label`` and ``created`` are written in clear (``"label"``, left out when empty, and
    ``"created"``, ISO 8601 in UTC, left out when None); they describe the key file and take
    no part in opening it.

    Raises
    ------
    ConfigError
        If ``kdf`` is over the format's ceiling (a reader would refuse the key file), the label
        is not one :func:`check_label` accepts, or ``created`` is naive.
    """
    if kdf.memory_kib > KDF_MAX_MEMORY_KIB or kdf.iterations > KDF_MAX_ITERATIONS or kdf.lanes > KDF_MAX_LANES:
        raise ConfigError(
            f"Argon2id parameters over the format's ceiling ({KDF_MAX_MEMORY_KIB // 1024} MiB, "
            f"{KDF_MAX_ITERATIONS} passes, {KDF_MAX_LANES} lanes): no reader would open the key file"
        )
    check_label(label)
    # Every refusal comes before the (costly) key derivation.
    created_text = None if created is None else _created_text(created)
    sealer = make_sealer(aead, kdf.derive(password, salt))
    doc: dict[str, Any] = {
        "version": 1,
        "kdf": {
            "algorithm": "argon2id",
            "memory_kib": kdf.memory_kib,
            "iterations": kdf.iterations,
            "lanes": kdf.lanes,
            "salt": b64e(salt),
        },
        "aead": aead,
        "data": b64e(sealer.seal(keys.to_json(), _KEY_AD, random=random)),
    }
    if label:
        doc["label"] = label
    if created_text is not None:
        doc["created"] = created_text
    return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"


def plain_key_file(keys: MasterKeys) -> bytes:
    """Return the bytes of the key file of an unencrypted repository (keys in clear)."""
    doc = {"version": 1, "kdf": None, "aead": "none", "keys": json.loads(keys.to_json())}
    return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"


def open_plain_key_file(data: bytes) -> MasterKeys:
    """Read the key file of an unencrypted repository."""
    try:
        doc = json.loads(data)
        if doc.get("version") != 1 or doc.get("aead") != "none":
            raise IntegrityError("not the key file of an unencrypted repository")
        return MasterKeys.from_json(json.dumps(doc["keys"]).encode())
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError, OverflowError) as e:
        if isinstance(e, IntegrityError):
            raise
        raise IntegrityError(f"key file is malformed: {e}") from e


#: Most Argon2 memory (KiB) a reader spends on one key file unless its caller allows more
#: (``Repository.open(max_kdf_memory_kib=...)``, the CLI's ``--max-kdf-memory``): twice RFC
#: 9106's 64 MiB recommendation, and low enough that a key file planted by whoever can write
#: the storage cannot make a mistyped password cost more than this.
KDF_MEMORY_LIMIT_KIB = 128 * 1024


def kdf_memory_kib(data: bytes) -> int:
    """The Argon2 memory (KiB) a key file asks for (0 when it does not parse: it fails at once)."""
    try:
        return int(json.loads(data)["kdf"]["memory_kib"])
    except (KeyError, TypeError, ValueError, RecursionError, OverflowError):
        return 0


def kdf_cost(data: bytes) -> int:
    """Memory times passes of a key file's KDF (0 when it does not parse: it fails at once)."""
    try:
        k = json.loads(data)["kdf"]
        return int(k["memory_kib"]) * int(k["iterations"])
    except (KeyError, TypeError, ValueError, RecursionError, OverflowError):
        return 0


def open_key_file(data: bytes, password: bytes) -> MasterKeys:
    """Unwrap a key file; raise WrongPassword if the password does not open it."""
    try:
        doc: dict[str, Any] = json.loads(data)
        k = doc["kdf"]
        if doc.get("version") != 1 or k.get("algorithm") != "argon2id":
            raise UnsupportedFormat("key file uses an unknown version or KDF")
        kdf = KdfParams(int(k["memory_kib"]), int(k["iterations"]), int(k["lanes"]))
        # Refuse parameters that would make opening a hostile key file exhaust memory or time.
        if kdf.memory_kib > KDF_MAX_MEMORY_KIB or kdf.iterations > KDF_MAX_ITERATIONS or kdf.lanes > KDF_MAX_LANES:
            raise UnsupportedFormat("key file asks for unreasonable KDF parameters")
        sealer = make_sealer(str(doc["aead"]), kdf.derive(password, b64d(k["salt"])))
        sealed = b64d(doc["data"])
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError, OverflowError) as e:
        if isinstance(e, (IntegrityError, UnsupportedFormat)):
            raise
        raise IntegrityError(f"key file is malformed: {e}") from e
    try:
        plain = sealer.open(sealed, _KEY_AD)
    except IntegrityError:
        raise WrongPassword("wrong password or damaged key file") from None
    return MasterKeys.from_json(plain)


@dataclass(frozen=True)
class KeyFileHeader:
    """What a key file states in clear: everything but the sealed master keys.

    Parameters
    ----------
    aead : str
        The AEAD sealing the master keys, or ``"none"`` for an unencrypted repository's key file.
    kdf : KdfParams or None
        The Argon2id parameters (None for an unencrypted repository's key file).
    label : str
        The key file's label; empty when it has none (key files written before labels existed).
    created : datetime or None
        When the key file was written (aware, UTC); None when it does not say.
    """

    aead: str
    kdf: KdfParams | None
    label: str = ""
    created: datetime | None = None


def _header_fields(doc: dict[str, Any]) -> tuple[str, datetime | None]:
    label = doc.get("label", "")
    error = _label_error(label)
    if error is not None:
        raise IntegrityError(f"key file {error}")
    text = doc.get("created")
    if text is None:
        return label, None
    if not isinstance(text, str) or len(text) > _MAX_CREATED_CHARS:
        raise IntegrityError("key file's created is not an ISO 8601 time")
    try:
        created = datetime.fromisoformat(text)
    except ValueError:
        raise IntegrityError(f"key file's created {text!r} is not an ISO 8601 time") from None
    if created.tzinfo is None:
        raise IntegrityError(f"key file's created {text!r} has no UTC offset")
    return label, created.astimezone(UTC)


def read_key_file_header(data: bytes, *, encrypted: bool) -> KeyFileHeader:
    """Read the clear part of a key file of an encrypted (or, with ``encrypted=False``,
    an unencrypted) repository, checking its shape as a reader would.

    No password is needed and nothing is derived or decrypted: a key file that passes may still
    hold keys of another repository, or open with no password anyone knows.

    Raises
    ------
    IntegrityError
        If it is not a key file of that kind (not JSON, a missing or malformed field, a label
        :func:`check_label` would refuse, a ``created`` without a UTC offset).
    UnsupportedFormat
        If it uses an unknown version, KDF or AEAD, or KDF parameters over the format's ceiling.
    """
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise IntegrityError("key file is not a JSON object")
        if doc.get("version") != 1:
            raise UnsupportedFormat(f"key file version {doc.get('version')!r} is unknown")
        label, created = _header_fields(doc)
        if not encrypted:
            if doc.get("aead") != "none" or doc.get("kdf") is not None or not isinstance(doc.get("keys"), dict):
                raise IntegrityError("not the key file of an unencrypted repository")
            return KeyFileHeader("none", None, label, created)
        k = doc["kdf"]
        if not isinstance(k, dict):
            raise IntegrityError("key file has no KDF: it is not a password-sealed key file")
        if k.get("algorithm") != "argon2id":
            raise UnsupportedFormat(f"key file uses an unknown KDF {k.get('algorithm')!r}")
        aead = doc["aead"]
        if aead not in SEALERS or aead == "none":
            raise UnsupportedFormat(f"key file uses an unknown AEAD {aead!r}")
        # Read as open_key_file reads them, so a key file that opens is never listed as unreadable.
        kdf = KdfParams(int(k["memory_kib"]), int(k["iterations"]), int(k["lanes"]))
        if kdf.memory_kib > KDF_MAX_MEMORY_KIB or kdf.iterations > KDF_MAX_ITERATIONS or kdf.lanes > KDF_MAX_LANES:
            raise UnsupportedFormat("key file asks for unreasonable KDF parameters")
        b64d(k["salt"])
        b64d(doc["data"])
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError, OverflowError) as e:
        if isinstance(e, (IntegrityError, UnsupportedFormat)):
            raise
        raise IntegrityError(f"key file is malformed: {e}") from e
    return KeyFileHeader(aead, kdf, label, created)
