"""The mapping of backend exceptions into snapvault's storage errors, for every store."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from snapvault.errors import (
    AccessDenied,
    BackendUnavailable,
    BucketNotFound,
    ObjectNotFound,
    SnapvaultError,
    StorageError,
    TransientStorageError,
)

__all__ = ["classify", "map_errors"]

# HTTP statuses worth another try: throttling and server-side hiccups.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# Error codes (S3 and friends) worth another try; S3's 409 ConditionalRequestConflict is a
# conditional write racing another one and succeeds when repeated.
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "ConditionalRequestConflict",
    "OperationAborted",
}
# Client-library exception class names meaning "the endpoint did not answer at all". Matched by
# name so that this module imports none of the optional cloud libraries.
_UNREACHABLE = {"EndpointConnectionError", "ServiceRequestError", "ClientConnectorError", "ConnectTimeoutError"}
_TIMEOUTS = {"ReadTimeoutError", "ServiceResponseError", "ServerTimeoutError", "ClientPayloadError"}
_AUTH = {"ClientAuthenticationError", "NoCredentialsError", "PartialCredentialsError", "RefreshError"}


def _status_and_code(e: BaseException) -> tuple[int | None, str]:
    status = getattr(e, "status_code", None) or getattr(e, "code", None) or getattr(e, "status", None)
    code = str(getattr(e, "error_code", "") or "")
    response = getattr(e, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        err = response.get("Error", {})
        code = code or str(err.get("Code", ""))
        status = status or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (status if isinstance(status, int) else None), code


def classify(e: BaseException, key: str | None, where: str) -> StorageError:
    """The snapvault error for a backend exception (used by :func:`map_errors`)."""
    if isinstance(e, StorageError):
        return e
    name = type(e).__name__
    status, code = _status_and_code(e)
    if isinstance(e, ConnectionRefusedError) or name in _UNREACHABLE:
        return BackendUnavailable(f"cannot reach {where}: {_short(e)}", key=key)
    if isinstance(e, OSError) and e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return BackendUnavailable(f"cannot reach {where}: {_short(e)}", key=key)
    if code in ("NoSuchBucket", "ContainerNotFound") or "bucket does not exist" in str(e).lower():
        return BucketNotFound(f"bucket or container not found: {where}", key=key)
    if isinstance(e, (FileNotFoundError, NotADirectoryError)) or status == 404 or name == "ResourceNotFoundError":
        # A path component that is a file means the object cannot exist either.
        return ObjectNotFound(f"not found: {where}", key=key)
    if isinstance(e, PermissionError) or status in (401, 403) or name in _AUTH or code in ("AccessDenied",):
        return AccessDenied(f"access denied: {where}", key=key)
    if (
        isinstance(e, (ConnectionError, TimeoutError))
        or status in _TRANSIENT_STATUS
        or code in _TRANSIENT_CODES
        or name in _TIMEOUTS
    ):
        return TransientStorageError(f"transient failure at {where}: {_short(e)}", key=key)
    return StorageError(f"storage error at {where}: {_short(e)}", key=key)


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def map_errors(key: str | None, url: str) -> Iterator[None]:
    """Translate whatever a backend raises into a :class:`StorageError` subclass.

    Every exception except :class:`BaseException`-only ones (KeyboardInterrupt, SystemExit) is
    mapped: an unknown one becomes a plain :class:`StorageError`, so no backend error escapes
    the storage layer with a type the caller cannot know.
    """
    where = f"{url}/{key}" if key else url
    try:
        yield
    except SnapvaultError:
        raise
    except Exception as e:  # the boundary: everything below is the backend's
        raise classify(e, key, where) from e
