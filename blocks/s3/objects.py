"""S3 calls on one bucket: each guarded, its errors mapped to what a user can act on.

A store that cannot be reached (after botocore's bounded retries) or keeps failing with a 5xx
raises `StorageUnavailable`; credentials the store refuses and a bucket that does not exist are
`BadInput`, one line each. Every write is once only: `If-None-Match: *` with a ChecksumSHA256
the server checks, under the retention the locker asks for.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    HTTPClientError,
    ReadTimeoutError,
)

from changeflow.errors import BadInput, IntegrityError, ServiceTimeout, StorageUnavailable

if TYPE_CHECKING:
    from prefect_aws import AwsCredentials

__all__ = [
    "CHUNK",
    "DEFAULT_TIMEOUT",
    "KnownKeys",
    "S3Objects",
    "b64",
    "error_code",
    "precondition_failed",
    "s3_client",
]

T = TypeVar("T")

CHUNK = 8 * 1024 * 1024
# how many stored attachment and asset keys a locker remembers, so a batch of records about the
# same attachment or asset does not re-check it (bounded: memory stays constant on any batch)
_KNOWN_MAX = 65_536
_REFUSED = frozenset({"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidClientTokenId"})
# A store that accepts connections and never answers costs at most `timeout` (ATTEMPTS read
# timeouts of timeout / ATTEMPTS each) plus botocore's backoff; the read timeout bounds each wait
# on the socket, so a large object that streams steadily is never cut. ATTEMPTS counts the first
# call (botocore's `max_attempts` would not: 4 of them meant 5 calls of 60 s each).
CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 30.0
ATTEMPTS = 3


# Clients made with explicit keys, shared by the lockers of a process: a boto3 client costs 60
# to 200 ms of CPU to make (a session loads the S3 service model), and is thread-safe. Keyed by
# everything that makes one (the secret by its digest); credentials from the environment or a
# profile are resolved anew each time.
_CLIENTS: dict[tuple[object, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def s3_client(credentials: AwsCredentials, pool: int, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A boto3 S3 client with bounded retries and `pool` connections (at least 10), giving up on
    a store that stays silent for `timeout` seconds over all its attempts."""
    secret = credentials.aws_secret_access_key
    if not (credentials.aws_access_key_id and secret):
        return _new_client(credentials, pool, timeout)
    key = (
        credentials.aws_access_key_id,
        hashlib.sha256(secret.get_secret_value().encode()).hexdigest(),
        credentials.aws_session_token,
        credentials.region_name,
        credentials.profile_name,
        credentials.aws_client_parameters.model_dump_json(),
        pool,
        timeout,
    )
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = _new_client(credentials, pool, timeout)
        return _CLIENTS[key]


def _new_client(credentials: AwsCredentials, pool: int, timeout: float) -> Any:
    params = credentials.aws_client_parameters.get_params_override()
    read_timeout = timeout / ATTEMPTS
    params["config"] = Config(
        retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
        connect_timeout=min(CONNECT_TIMEOUT, read_timeout),
        read_timeout=read_timeout,
        max_pool_connections=max(pool, 10),
        # the locker sends its own ChecksumSHA256 and re-hashes what it reads
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return credentials.get_boto3_session().client("s3", **params)


def b64(hex_digest: str) -> str:
    """A hex sha256 in the base64 form S3's ChecksumSHA256 takes."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def error_code(exc: ClientError) -> tuple[str, int | None]:
    """The S3 error code and HTTP status of a refused call."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code, exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def precondition_failed(exc: ClientError) -> bool:
    """Whether a conditional write was refused because the key already holds an object."""
    code, status = error_code(exc)
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412


def _not_found(exc: ClientError) -> bool:
    code, status = error_code(exc)
    return code in ("NoSuchKey", "404", "NotFound") or status == 404


class KnownKeys:
    """Keys this locker stored or checked lately: a bounded, thread-safe memory of them."""

    def __init__(self, limit: int = _KNOWN_MAX) -> None:
        self._limit = limit
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        """Remember `key`, forgetting the oldest beyond the limit."""
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._limit:
                self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys


@dataclass(frozen=True)
class S3Objects:
    """The objects of one bucket, through a boto3 client.

    Attributes:
        client: the boto3 S3 client.
        bucket: the bucket's name.
        endpoint: where the store is, for messages.
        retention: the Object Lock headers a write carries. A callable, asked at a write only:
            reading needs no lock configuration (an auditor's key may not read it).
    """

    client: Any
    bucket: str
    endpoint: str
    retention: Callable[[], dict[str, Any]] = dict

    def url(self, key: str) -> str:
        """The `s3://` URL of a key in this bucket."""
        return f"s3://{self.bucket}/{key}"

    def holds(self, url: str) -> bool:
        """Whether `url` names an object of this bucket."""
        return url.startswith(self.url(""))

    def key_of(self, url: str) -> str:
        """The key an `s3://` URL of this bucket names."""
        return url.removeprefix(self.url(""))

    def _unavailable(self, what: str, exc: Exception) -> StorageUnavailable:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # a store that took the connection and stayed silent: not worth another round of tries
        silent = isinstance(exc, ReadTimeoutError | ConnectTimeoutError)
        kind: type[StorageUnavailable] = ServiceTimeout if silent else StorageUnavailable
        return kind(
            f"evidence locker {self.endpoint} unreachable while trying to {what} "
            f"(gave up after bounded retries; a rerun completes the work): {reason}"
        )

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call boto3, saying in one line what failed when it cannot be done.

        Raises:
            StorageUnavailable: when the store is unreachable or keeps answering 5xx.
            BadInput: when it refuses the credentials, or the bucket does not exist.
            ClientError: any other refusal, for the caller to judge.
        """
        try:
            return fn(*args, **kwargs)
        except (ConnectionError, HTTPClientError) as exc:
            raise self._unavailable(what, exc) from exc
        except ClientError as exc:
            code, status = error_code(exc)
            if status is not None and status >= 500:
                raise self._unavailable(what, exc) from exc
            if code in _REFUSED or code == "AccessDenied":
                # configuration a user can fix: one line, exit 2 at the CLI
                hint = (
                    "these S3 credentials are not allowed to"
                    if code == "AccessDenied"
                    else "check the S3 credentials and endpoint"
                )
                raise BadInput(f"the evidence locker refused to {what}: {code} ({hint})") from exc
            if code == "NoSuchBucket":
                # a mistyped bucket name; asking first also stops SeaweedFS from creating it,
                # without Object Lock, on the first write
                raise BadInput(
                    f"the evidence bucket {self.bucket!r} does not exist at {self.endpoint}: "
                    "check the bucket name, or create the bucket with Object Lock on"
                ) from exc
            raise

    def put_once(
        self, key: str, body: bytes, *, content_type: str, metadata: dict[str, str] | None = None
    ) -> bool:
        """Write `body` (with user `metadata`, locked with it) at `key` unless an object is there.

        Returns:
            True when written, False when the same bytes were already stored.

        Raises:
            IntegrityError: when different bytes are already stored at `key`.
        """
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "IfNoneMatch": "*",
            "ContentType": content_type,
            "ChecksumSHA256": b64(hashlib.sha256(body).hexdigest()),
            **self.retention(),
        }
        if metadata:
            args["Metadata"] = metadata
        try:
            self.call(f"write {key}", self.client.put_object, **args)
            return True
        except ClientError as exc:
            if not precondition_failed(exc):
                raise
        if self.get(key) != body:
            raise IntegrityError(f"{self.url(key)} already holds different content")
        return False

    def open(self, key: str) -> Any:
        """An object's body, to read as it streams.

        Raises:
            IntegrityError: when there is no object at `key`.
        """
        try:
            response = self.call(f"read {key}", self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _not_found(exc):
                raise IntegrityError(f"{self.url(key)} is missing") from exc
            raise
        return response["Body"]

    def get(self, key: str) -> bytes:
        """An object's bytes, in memory."""
        body = self.open(key)
        # the body streams: a connection cut while reading is an unreachable store too
        data: bytes = self.call(f"read {key}", body.read)
        return data

    def stream(self, key: str, sink: BinaryIO | None) -> tuple[str, int]:
        """Read an object in chunks (constant memory), copying them to `sink` when given.

        Returns:
            The `sha256:` digest of what was read, and its size.
        """
        body = self.open(key)
        sha, size = hashlib.sha256(), 0
        try:
            while True:
                chunk: bytes = self.call(f"read {key}", body.read, CHUNK)
                if not chunk:
                    break
                sha.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            body.close()
        return f"sha256:{sha.hexdigest()}", size

    def head(self, key: str) -> dict[str, Any] | None:
        """An object's metadata with its stored checksum, or None when there is no object."""
        try:
            head: dict[str, Any] = self.call(
                f"check {key}",
                self.client.head_object,
                Bucket=self.bucket,
                Key=key,
                ChecksumMode="ENABLED",
            )
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        return head

    def list(self, prefix: str) -> list[str]:
        """Every key below `prefix`."""
        keys: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        # each page is a request: fetch them through `call` so every one is guarded
        iterator = iter(pages)
        while True:
            page = self.call(f"list {prefix or 'the bucket'}", next, iterator, None)
            if page is None:
                return keys
            keys.extend(item["Key"] for item in page.get("Contents", []))
