"""The evidence locker: content-addressed, write-once evidence on S3-compatible storage."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters
from pydantic import Field, HttpUrl, PrivateAttr
from s3transfer.utils import ReadFileChunk

from changeflow.canonical import canonical_json, digest, digest_hex
from changeflow.errors import BadInput, IntegrityError, StorageUnavailable
from changeflow.models import Asset, Attachment, Evidence, InventoryEntry, asset_id
from changeflow.settings import Settings
from changeflow.summary import EvidenceSummary

__all__ = ["EvidenceLocker"]

_CHUNK = 8 * 1024 * 1024
_MIB = 1024 * 1024
# S3 allows at most 10,000 parts; parts (but the last) are at least 5 MiB
_MAX_PARTS = 10_000
# how many stored attachment and asset ids a locker remembers, so a batch of records about the
# same attachment or asset does not re-check it (bounded: memory stays constant on any batch)
_KNOWN_MAX = 65_536


def _shard(h: str) -> str:
    return f"{h[:2]}/{h}"


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _error_code(exc: ClientError) -> tuple[str, int | None]:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code, exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _precondition_failed(exc: ClientError) -> bool:
    code, status = _error_code(exc)
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412


# what S3 servers answer when a body does not match the checksum sent with it
_DIGEST_ERRORS = {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"}


def _composite(part_hashes: list[str]) -> str:
    """The composite ChecksumSHA256 S3 reports for a multipart object with these part hashes."""
    joined = b"".join(bytes.fromhex(h) for h in part_hashes)
    return f"{base64.b64encode(hashlib.sha256(joined).digest()).decode()}-{len(part_hashes)}"


def _not_found(exc: ClientError) -> bool:
    code, status = _error_code(exc)
    return code in ("NoSuchKey", "404", "NotFound") or status == 404


_REFUSED = frozenset({"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidClientTokenId"})


class EvidenceLocker(Block):
    """Evidence records, their attachments and deployment summaries in one S3 bucket.

    Every object is content-addressed and written once (`If-None-Match: *` with a sha256
    checksum), under Object Lock retention where the bucket has it; every read re-hashes.

    Example:
        ```python
        from blocks.evidence_locker import EvidenceLocker

        locker = EvidenceLocker.load("evidence-locker")
        evidence = locker.get_evidence("3f2a...")
        ```
    """

    _block_type_name = "changeflow Evidence Locker"
    _block_type_slug = "changeflow-evidence-locker"
    _description = "Content-addressed, write-once evidence on S3-compatible object storage."
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
    _documentation_url = HttpUrl("https://docs.prefect.io/v3/develop/blocks")
    _code_example = """
    ```python
    from blocks.evidence_locker import EvidenceLocker

    locker = EvidenceLocker.load("BLOCK_NAME")
    print(locker.check_storage())
    ```
    """

    bucket: str = Field(description="The evidence bucket.")
    prefix: str = Field(default="", description="Optional key prefix inside the bucket.")
    credentials: AwsCredentials = Field(
        default_factory=AwsCredentials,
        description="S3 credentials; set aws_client_parameters.endpoint_url for non-AWS stores.",
    )
    retention_mode: Literal["COMPLIANCE", "GOVERNANCE"] = Field(
        default="COMPLIANCE", description="Object Lock mode applied to every object."
    )
    retention_days: int = Field(default=365, gt=0, description="Object Lock retention in days.")
    max_concurrency: int = Field(default=16, gt=0, description="Parallel requests for reads.")
    multipart_threshold: int = Field(
        default=64 * _MIB,
        ge=5 * _MIB,
        description="Attachments larger than this many bytes stream up by multipart upload.",
    )
    multipart_part_size: int = Field(
        default=16 * _MIB, ge=5 * _MIB, description="Part size of a multipart upload, in bytes."
    )
    multipart_concurrency: int = Field(
        # 2: each part in flight costs a few MB of buffers; more does not upload faster on a
        # loopback store, where the server's CPU is the limit
        default=2,
        gt=0,
        description="Parts in flight at once (each streams from the file).",
    )

    _client: Any = PrivateAttr(default=None)
    _locked: bool | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _known: OrderedDict[str, None] = PrivateAttr(default_factory=OrderedDict)

    @classmethod
    def from_env(cls) -> EvidenceLocker:
        """Build the locker from the `CHANGEFLOW_S3_*` variables."""
        return cls.from_settings(Settings.from_env())

    @classmethod
    def from_settings(cls, settings: Settings) -> EvidenceLocker:
        """Build the locker from `CHANGEFLOW_S3_*` settings."""
        return cls(
            bucket=settings.require("s3_bucket"),
            prefix=settings.s3_prefix,
            credentials=AwsCredentials(
                aws_access_key_id=(
                    settings.s3_access_key.get_secret_value() if settings.s3_access_key else None
                ),
                aws_secret_access_key=settings.s3_secret_key,
                region_name=settings.s3_region,
                aws_client_parameters=AwsClientParameters(endpoint_url=settings.s3_endpoint),
            ),
        )

    # -- plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client, with bounded retries and a pool sized for `max_concurrency`."""
        with self._lock:
            if self._client is None:
                params = self.credentials.aws_client_parameters.get_params_override()
                params["config"] = Config(
                    retries={"max_attempts": 4, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    max_pool_connections=max(self.max_concurrency, 10),
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                session = self.credentials.get_boto3_session()
                self._client = session.client("s3", **params)
            return self._client

    def key(self, *parts: str) -> str:
        """Return the object key for `parts` below the locker's prefix."""
        return "/".join(p for p in (self.prefix.strip("/"), *parts) if p)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @property
    def _endpoint(self) -> str:
        return self.credentials.aws_client_parameters.endpoint_url or "AWS S3"

    def _unavailable(self, what: str, exc: Exception) -> StorageUnavailable:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StorageUnavailable(
            f"evidence locker {self._endpoint} unreachable while trying to {what} "
            f"(gave up after bounded retries; a rerun completes the work): {reason}"
        )

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call boto3; a store that cannot be reached (after botocore's bounded retries) or that
        keeps failing with a 5xx raises `StorageUnavailable` with one line saying what failed."""
        try:
            return fn(*args, **kwargs)
        except (ConnectionError, HTTPClientError) as exc:
            raise self._unavailable(what, exc) from exc
        except ClientError as exc:
            code, status = _error_code(exc)
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
                    f"the evidence bucket {self.bucket!r} does not exist at {self._endpoint}: "
                    "check the bucket name, or create the bucket with Object Lock on"
                ) from exc
            raise

    def _remember(self, key: str) -> None:
        with self._lock:
            self._known[key] = None
            self._known.move_to_end(key)
            while len(self._known) > _KNOWN_MAX:
                self._known.popitem(last=False)

    def _remembered(self, key: str) -> bool:
        with self._lock:
            return key in self._known

    def _retention(self) -> dict[str, Any]:
        if not self.object_lock:
            return {}
        return {
            "ObjectLockMode": self.retention_mode,
            "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=self.retention_days),
        }

    @property
    def object_lock(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once)."""
        if self._locked is None:
            try:
                conf = self._call(
                    "read the bucket's lock configuration",
                    self.client.get_object_lock_configuration,
                    Bucket=self.bucket,
                )
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                self._locked = enabled == "Enabled"
            except ClientError:
                self._locked = False
        return self._locked

    def _put_once(self, key: str, body: bytes, *, content_type: str) -> bool:
        """Write `body` at `key` unless an object is already there.

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
            "ChecksumSHA256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
            **self._retention(),
        }
        try:
            self._call(f"write {key}", self.client.put_object, **args)
            return True
        except ClientError as exc:
            if not _precondition_failed(exc):
                raise
        existing = self._get(key)
        if existing != body:
            raise IntegrityError(f"{self.url(key)} already holds different content")
        return False

    def _open(self, key: str) -> Any:
        try:
            response = self._call(
                f"read {key}", self.client.get_object, Bucket=self.bucket, Key=key
            )
        except ClientError as exc:
            if _not_found(exc):
                raise IntegrityError(f"{self.url(key)} is missing") from exc
            raise
        return response["Body"]

    def _get(self, key: str) -> bytes:
        body = self._open(key)
        # the body streams: a connection cut while reading is an unreachable store too
        data: bytes = self._call(f"read {key}", body.read)
        return data

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
        # each page is a request: fetch them through _call so every one is guarded
        iterator = iter(pages)
        while True:
            page = self._call(f"list {prefix or 'the bucket'}", next, iterator, None)
            if page is None:
                return keys
            keys.extend(item["Key"] for item in page.get("Contents", []))

    # -- attachments ----------------------------------------------------------------------

    def attachment_key(self, hash_: str) -> str:
        return self.key("raw/attachments", _shard(digest_hex(hash_)), "content")

    def store_attachment_bytes(self, data: bytes, label: str | None = None) -> Attachment:
        """Store attachment bytes (write-once) and return the attachment reference."""
        hash_ = digest(data)
        key = self.attachment_key(hash_)
        self._put_once(key, data, content_type="application/octet-stream")
        self._remember(key)
        return Attachment(hash=hash_, url=self.url(key), label=label, size=len(data))

    def store_attachment(self, path: Path, label: str | None = None) -> Attachment:
        """Store a file as an attachment; above `multipart_threshold` it streams by multipart.

        Raises:
            BadInput: when the file does not exist.
        """
        if not path.is_file():
            raise BadInput(f"attachment not found: {path}")
        size = path.stat().st_size
        if size <= self.multipart_threshold:
            return self.store_attachment_bytes(path.read_bytes(), label or path.name)
        return self._store_large(path, size, label or path.name)

    def _part_size(self, size: int) -> int:
        # grow the part when the file would need more parts than S3 allows
        needed = -(-size // _MAX_PARTS)
        return max(self.multipart_part_size, -(-needed // _MIB) * _MIB)

    def _hash_file(self, path: Path, part_size: int) -> tuple[str, list[str]]:
        """The file's sha256 and each part's sha256, read in one streaming pass."""
        whole, parts = hashlib.sha256(), []
        with path.open("rb") as stream:
            while True:
                part, left = hashlib.sha256(), part_size
                while left:
                    chunk = stream.read(min(_MIB, left))
                    if not chunk:
                        break
                    whole.update(chunk)
                    part.update(chunk)
                    left -= len(chunk)
                if left == part_size:
                    return whole.hexdigest(), parts
                parts.append(part.hexdigest())
                if left:
                    return whole.hexdigest(), parts

    def _store_large(self, path: Path, size: int, label: str) -> Attachment:
        """Stream a big file to its content-addressed key with constant memory.

        Two passes over the file. The key is the file's sha256, so it must be known before the
        upload starts: a first pass hashes the file (and each part). The second pass uploads
        each part with its own ChecksumSHA256, which the server checks, and completes with
        `If-None-Match: *` (SeaweedFS and AWS S3 honour it on CompleteMultipartUpload), so the
        object appears whole or not at all and never replaces another. Uploading to a temporary
        key and copying was rejected: under Object Lock the temporary object would itself be
        retained for the whole retention period, and a copy is limited to 5 GiB.
        """
        part_size = self._part_size(size)
        hex_, part_hashes = self._hash_file(path, part_size)
        hash_ = f"sha256:{hex_}"
        key = self.attachment_key(hash_)
        attachment = Attachment(hash=hash_, url=self.url(key), label=label, size=size)
        if self._large_is_stored(key, hex_, size, part_hashes):
            self._remember(key)
            return attachment
        upload = self._call(
            f"start uploading {key}",
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ContentType="application/octet-stream",
            ChecksumAlgorithm="SHA256",
            # the composite checksum S3 keeps is over parts: keep the whole-object sha256 too
            Metadata={"sha256": hex_},
            **self._retention(),
        )
        upload_id = upload["UploadId"]
        try:
            parts = self._upload_parts(path, key, upload_id, part_size, part_hashes)
            try:
                done = self._call(
                    f"complete {key}",
                    self.client.complete_multipart_upload,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if not _precondition_failed(exc):
                    raise
                # another writer stored this key first: it must hold the same bytes
                self._abort(key, upload_id)
                if not self._large_is_stored(key, hex_, size, part_hashes):
                    raise IntegrityError(
                        f"{self.url(key)} already holds different content"
                    ) from exc
                self._remember(key)
                return attachment
        except BaseException:
            self._abort(key, upload_id)
            raise
        if done.get("ChecksumSHA256", _composite(part_hashes)) != _composite(part_hashes):
            raise IntegrityError(f"{self.url(key)} was assembled from other parts than were sent")
        self._remember(key)
        return attachment

    def _upload_parts(
        self, path: Path, key: str, upload_id: str, part_size: int, expected: list[str]
    ) -> list[dict[str, Any]]:
        """Send the parts, each read from disk as it goes out (memory does not grow with them).

        Each part carries the sha256 the first pass computed, and the server refuses a part
        whose bytes do not match it: so the object assembled is exactly the bytes that hashed to
        its key, even if the file changed in between.
        """
        size = path.stat().st_size

        def send(number: int) -> dict[str, Any]:
            start = (number - 1) * part_size
            checksum = _b64(expected[number - 1])
            # a window on the file: boto3 reads (and re-reads on a retry) it in small chunks
            with ReadFileChunk.from_filename(
                str(path), start, min(part_size, size - start), enable_callbacks=False
            ) as body:
                try:
                    result = self._call(
                        f"upload part {number} of {key}",
                        self.client.upload_part,
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=body,
                        ChecksumSHA256=checksum,
                    )
                except ClientError as exc:
                    if _error_code(exc)[0] in _DIGEST_ERRORS:
                        raise IntegrityError(f"{path} changed while it was being stored") from exc
                    raise
            return {"PartNumber": number, "ETag": result["ETag"], "ChecksumSHA256": checksum}

        if -(-size // part_size) != len(expected):
            raise IntegrityError(f"{path} changed while it was being stored")
        with ThreadPoolExecutor(self.multipart_concurrency) as pool:
            return list(pool.map(send, range(1, len(expected) + 1)))

    def _abort(self, key: str, upload_id: str) -> None:
        # best effort: an upload left incomplete is never an object (readers cannot see it), and
        # a bucket lifecycle rule (AbortIncompleteMultipartUpload) reclaims its parts
        with contextlib.suppress(Exception):  # cleanup must not hide the error that led here
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _head(self, key: str) -> dict[str, Any] | None:
        """An object's metadata with its stored checksum, or None when there is no object."""
        try:
            head: dict[str, Any] = self._call(
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

    def _large_is_stored(self, key: str, hex_: str, size: int, part_hashes: list[str]) -> bool:
        """Whether `key` already holds these bytes; a stored object that differs raises."""
        head = self._head(key)
        if head is None:
            return False
        stored = head.get("ChecksumSHA256")
        if head.get("ContentLength") == size and stored in (_b64(hex_), _composite(part_hashes)):
            return True
        # stored another way (other part size): re-hash what is there, streaming
        self.verify_attachment(f"sha256:{hex_}")
        return True

    def get_attachment(self, hash_: str) -> bytes:
        """Read an attachment and check it still hashes to `hash_` (in memory: small ones)."""
        data = self._get(self.attachment_key(hash_))
        if digest(data) != hash_:
            raise IntegrityError(f"attachment {hash_} no longer matches its hash")
        return data

    def _stream(self, hash_: str, sink: BinaryIO | None) -> int:
        key = self.attachment_key(hash_)
        body = self._open(key)
        sha, size = hashlib.sha256(), 0
        try:
            while True:
                chunk: bytes = self._call(f"read {key}", body.read, _CHUNK)
                if not chunk:
                    break
                sha.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            body.close()
        if f"sha256:{sha.hexdigest()}" != hash_:
            raise IntegrityError(f"attachment {hash_} no longer matches its hash")
        return size

    def verify_attachment(self, hash_: str) -> int:
        """Re-hash a stored attachment while it streams (constant memory); return its size.

        Raises:
            IntegrityError: when it is missing or no longer hashes to `hash_`.
        """
        return self._stream(hash_, None)

    def download_attachment(self, hash_: str, target: Path) -> int:
        """Stream an attachment to `target`, which appears only once it verified; its size.

        Raises:
            IntegrityError: when it is missing or no longer hashes to `hash_`.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as sink:
                size = self._stream(hash_, sink)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    # -- evidence and assets --------------------------------------------------------------

    def evidence_key(self, evidence_id: str) -> str:
        return self.key("raw/evidences", _shard(evidence_id), "index.json")

    def put_asset(self, asset: Asset) -> None:
        """Store an asset record; the first record for a uri is the one kept."""
        key = self.key("raw/assets", _shard(asset.id), "index.json")
        if self._remembered(key):
            return
        try:
            self._put_once(key, asset.to_json(), content_type="application/json")
        except IntegrityError:
            # asset records are addressed by uri, not content: a later one may relate more
            stored = Asset.model_validate_json(self._get(key))
            if stored.uri != asset.uri:
                raise
        self._remember(key)

    def put_evidence(self, evidence: Evidence, assets: Iterable[Asset] = ()) -> Evidence:
        """Store a sealed evidence record, its assets and the per-asset markers.

        Attachments must already be stored: the record is written only once they verify, and
        the markers only after the record, so a reader never finds a dangling link.
        """
        sealed = evidence if evidence.id else evidence.sealed()
        if not sealed.is_sealed():
            raise IntegrityError(f"evidence {sealed.id} does not hash to its id")
        for attachment in sealed.attachments:
            self._head_attachment(attachment)
        for asset in assets:
            self.put_asset(asset)
        self._put_once(
            self.evidence_key(sealed.id), sealed.to_json(), content_type="application/json"
        )
        for aid in sealed.assets:
            marker = self.key("raw/assets", _shard(aid), "evidences", sealed.id)
            self._put_once(marker, b"", content_type="application/octet-stream")
        return sealed

    def _head_attachment(self, attachment: Attachment) -> None:
        key = self.attachment_key(attachment.hash)
        if self._remembered(key):
            # this locker wrote or checked it moments ago, with the server checking its sha256
            return
        head = self._head(key)
        if head is None:
            raise IntegrityError(f"attachment {attachment.hash} is not stored")
        stored = head.get("ChecksumSHA256")
        hex_ = digest_hex(attachment.hash)
        if stored and "-" in stored:
            # a multipart object: S3 keeps a checksum of its parts; the upload recorded the
            # whole-object sha256 (checked part by part before it completed) in its metadata
            if head.get("Metadata", {}).get("sha256") != hex_:
                raise IntegrityError(
                    f"attachment {attachment.hash} is stored with another checksum"
                )
        elif stored and stored != _b64(hex_):
            raise IntegrityError(f"attachment {attachment.hash} is stored with another checksum")
        self._remember(key)

    def get_evidence(self, evidence_id: str) -> Evidence:
        """Read an evidence record and check it still hashes to its id."""
        raw = self._get(self.evidence_key(evidence_id))
        try:
            record = Evidence.model_validate_json(raw)
        except ValueError as exc:
            raise IntegrityError(f"evidence {evidence_id} is not a valid record") from exc
        if record.id != evidence_id or not record.is_sealed():
            raise IntegrityError(f"evidence {evidence_id} does not hash to its id")
        return record

    def evidence_ids(self, aid: str) -> list[str]:
        """Ids of every evidence record about an asset: one LIST of its markers."""
        prefix = self.key("raw/assets", _shard(aid), "evidences") + "/"
        return sorted(k.rsplit("/", 1)[1] for k in self._list(prefix))

    def evidence_for_assets(self, asset_ids: Iterable[str]) -> dict[str, list[Evidence]]:
        """Every evidence record about each asset, read with bounded concurrency."""
        listed = self.evidence_for_assets_ids(asset_ids)
        unique = sorted({e for found in listed.values() for e in found})
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            records = dict(zip(unique, pool.map(self.get_evidence, unique), strict=True))
        return {aid: [records[e] for e in found] for aid, found in listed.items()}

    # -- deployment summaries -------------------------------------------------------------

    def summary_key(self, run_id: str) -> str:
        return self.key("raw/cd", run_id, "summary.json")

    def put_summary(self, summary: EvidenceSummary) -> tuple[str, str]:
        """Store a deployment run's summary once; return its url and sha256 digest."""
        body = summary.to_json()
        key = self.summary_key(summary.scope)
        self._put_once(key, body, content_type="application/json")
        return self.url(key), digest(body)

    def get_summary(self, url: str, expected: str) -> EvidenceSummary:
        """Read a summary by url and check it against the digest its CR holds."""
        prefix = f"s3://{self.bucket}/"
        if not url.startswith(prefix):
            raise IntegrityError(f"summary {url} is not in bucket {self.bucket}")
        body = self._get(url.removeprefix(prefix))
        if digest(body) != expected:
            raise IntegrityError(f"summary {url} does not match {expected}")
        return EvidenceSummary.model_validate_json(body)

    # -- verification ---------------------------------------------------------------------

    def verify_evidence(self, evidence_ids: Iterable[str]) -> tuple[int, list[str]]:
        """Re-hash evidence records and their attachments.

        Returns:
            How many objects were re-hashed, and a line for each that did not verify.
        """

        def one(evidence_id: str) -> tuple[int, list[str]]:
            try:
                record = self.get_evidence(evidence_id)
            except IntegrityError as exc:
                return 1, [str(exc)]
            broken = []
            for attachment in record.attachments:
                try:
                    self.verify_attachment(attachment.hash)
                except IntegrityError as exc:
                    broken.append(f"evidence {evidence_id}: {exc}")
            return 1 + len(record.attachments), broken

        ids = sorted(set(evidence_ids))
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            results = list(pool.map(one, ids))
        return sum(n for n, _ in results), [b for _, found in results for b in found]

    def verify_summary(self, url: str, expected: str) -> tuple[int, list[str]]:
        """Re-hash a deployment summary and everything it refers to."""
        try:
            summary = self.get_summary(url, expected)
        except IntegrityError as exc:
            return 1, [str(exc)]
        checked, broken = self.verify_evidence(item.evidence_id for item in summary.evidence)
        return checked + 1, broken

    def verify_entries(self, entries: list[InventoryEntry]) -> tuple[int, list[str]]:
        """Check each entry has evidence that verifies and, when stored here, its artifact."""
        checked, broken = 0, []
        found = self.evidence_for_assets_ids(asset_id(e.provenance) for e in entries)
        for entry in entries:
            ids = found.get(asset_id(entry.provenance), [])
            if not ids:
                broken.append(f"entry {entry.name}: no evidence for {entry.provenance}")
            if entry.artifact.startswith(f"s3://{self.bucket}/"):
                checked += 1
                try:
                    self.verify_attachment(entry.sha256)
                except IntegrityError as exc:
                    broken.append(f"entry {entry.name}: artifact {exc}")
        more, broken_more = self.verify_evidence(e for ids in found.values() for e in ids)
        return checked + more, [*broken, *broken_more]

    def evidence_for_assets_ids(self, asset_ids: Iterable[str]) -> dict[str, list[str]]:
        """The evidence ids about each asset, listed with bounded concurrency."""
        ids = sorted(set(asset_ids))
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return dict(zip(ids, pool.map(self.evidence_ids, ids), strict=True))

    # -- the bucket itself ----------------------------------------------------------------

    def create_bucket(self) -> None:
        """Create the bucket with Object Lock on and default retention (idempotent).

        The default rule (the locker's mode and days) covers objects written without explicit
        retention; a bucket that already has a rule keeps it.
        """
        created = True
        try:
            self._call(
                "create the bucket",
                self.client.create_bucket,
                Bucket=self.bucket,
                ObjectLockEnabledForBucket=True,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
            created = False
        self._locked = None
        if self.object_lock and (created or self._default_rule() is None):
            self._call(
                "set the bucket's default retention",
                self.client.put_object_lock_configuration,
                Bucket=self.bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {
                        "DefaultRetention": {
                            "Mode": self.retention_mode,
                            "Days": self.retention_days,
                        }
                    },
                },
            )

    def _lock_configuration(self) -> dict[str, Any]:
        try:
            conf = self._call(
                "read the bucket's lock configuration",
                self.client.get_object_lock_configuration,
                Bucket=self.bucket,
            )
        except ClientError:
            return {}
        found: dict[str, Any] = conf.get("ObjectLockConfiguration", {})
        return found

    def _default_rule(self) -> dict[str, Any] | None:
        """The bucket's default retention as {mode, days}, or None without a rule."""
        rule = self._lock_configuration().get("Rule", {}).get("DefaultRetention")
        if not rule:
            return None
        days = int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0)
        return {"mode": rule.get("Mode"), "days": days}

    def bucket_status(self) -> dict[str, Any]:
        """Whether the bucket is versioned and locked, and for how long it retains."""
        versioning = self._call(
            "read the bucket's versioning",
            self.client.get_bucket_versioning,
            Bucket=self.bucket,
        ).get("Status")
        return {
            "bucket": self.bucket,
            "versioned": versioning == "Enabled",
            "object_lock": self.object_lock,
            "retention_mode": self.retention_mode if self.object_lock else None,
            "retention_days": self.retention_days if self.object_lock else 0,
        }

    def check_storage(self) -> dict[str, Any]:
        """Check the bucket can keep evidence immutable for at least `retention_days`.

        Three conditions, each reported, all needed for `ok`:

        - `versioned`: bucket versioning is `Enabled` (an overwrite can never erase a version);
        - `locked`: the bucket's Object Lock configuration says `Enabled`;
        - `retention_ok`: `retention_days` (reported) is at least the locker's
          `retention_days` and the probe carries the locker's `retention_mode`. Reported
          `retention_days` is the shortest of (a) the bucket's default rule, when it has one
          (`Days`, or `Years` x 365), which covers objects written without explicit retention,
          and (b) the probe: a tiny content-addressed object
          (`raw/checks/<h[:2]>/<h>/probe.json`) the locker writes exactly as it writes
          evidence, then reads back; its days are (RetainUntilDate - LastModified) in whole
          days, with one minute of slack for the server rounding to seconds. The probe proves
          the server really applies the retention the locker asks for; under Object Lock it
          is itself retained, so each check leaves one object of about 100 bytes.

        An unlocked bucket gets no probe and reports 0 days.

        Returns:
            A JSON-ready dict: bucket, versioned, locked, retention_mode, retention_days,
            default_retention ({mode, days} or None), probe ({key, mode, days} or None),
            required_days, required_mode, retention_ok, ok, checked_at.
        """
        status = self.bucket_status()
        locked = bool(status["object_lock"])
        rule = self._default_rule() if locked else None
        probe = self._probe_retention() if locked else None
        candidates = [d for d in (rule and rule["days"], probe and probe["days"]) if d is not None]
        days = min(candidates) if candidates else 0
        mode = probe["mode"] if probe else None
        retention_ok = locked and days >= self.retention_days and mode == self.retention_mode
        return {
            "bucket": self.bucket,
            "versioned": bool(status["versioned"]),
            "locked": locked,
            "retention_mode": mode,
            "retention_days": days,
            "default_retention": rule,
            "probe": probe,
            "required_days": self.retention_days,
            "required_mode": self.retention_mode,
            "retention_ok": retention_ok,
            "ok": bool(status["versioned"]) and locked and retention_ok,
            "checked_at": datetime.now(UTC).isoformat(),
        }

    def _probe_retention(self) -> dict[str, Any]:
        body = canonical_json(
            {
                "probe": "changeflow locker check",
                "at": datetime.now(UTC).isoformat(),
                "nonce": secrets.token_hex(8),
            }
        )
        key = self.key("raw/checks", _shard(digest_hex(digest(body))), "probe.json")
        self._put_once(key, body, content_type="application/json")
        head = self._head(key)
        if head is None:
            raise IntegrityError(f"{self.url(key)} vanished right after it was written")
        until = head.get("ObjectLockRetainUntilDate")
        written = head.get("LastModified")
        days = 0
        if until is not None and written is not None:
            days = int(((until - written).total_seconds() + 60) // 86400)
        return {"key": key, "mode": head.get("ObjectLockMode"), "days": days}
