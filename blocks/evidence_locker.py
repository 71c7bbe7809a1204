"""The evidence locker: content-addressed, write-once evidence on S3-compatible storage."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters
from pydantic import Field, PrivateAttr

from changeflow.canonical import digest, digest_hex
from changeflow.errors import BadInput, IntegrityError, StorageUnavailable
from changeflow.models import Asset, Attachment, Evidence, InventoryEntry, asset_id
from changeflow.settings import Settings
from changeflow.summary import EvidenceSummary

__all__ = ["EvidenceLocker"]

_CHUNK = 8 * 1024 * 1024


def _shard(h: str) -> str:
    return f"{h[:2]}/{h}"


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
    _code_example = """
    ```python
    from blocks.evidence_locker import EvidenceLocker

    locker = EvidenceLocker.load("evidence-locker")
    print(locker.bucket_status())
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

    _client: Any = PrivateAttr(default=None)
    _locked: bool | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (EndpointConnectionError, BotoCoreError) as exc:
            if isinstance(exc, EndpointConnectionError) or "connect" in str(exc).lower():
                raise StorageUnavailable(
                    f"evidence locker unreachable while trying to {what}: {exc}"
                ) from exc
            raise

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
        }
        if self.object_lock:
            args["ObjectLockMode"] = self.retention_mode
            args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=self.retention_days
            )
        try:
            self._call(f"write {key}", self.client.put_object, **args)
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code not in ("PreconditionFailed", "ConditionalRequestConflict") and status != 412:
                raise
        existing = self._get(key)
        if existing != body:
            raise IntegrityError(f"{self.url(key)} already holds different content")
        return False

    def _get(self, key: str) -> bytes:
        try:
            response = self._call(
                f"read {key}", self.client.get_object, Bucket=self.bucket, Key=key
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise IntegrityError(f"{self.url(key)} is missing") from exc
            raise
        data: bytes = response["Body"].read()
        return data

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except EndpointConnectionError as exc:
            raise StorageUnavailable(f"evidence locker unreachable while listing: {exc}") from exc
        return keys

    # -- attachments ----------------------------------------------------------------------

    def attachment_key(self, hash_: str) -> str:
        return self.key("raw/attachments", _shard(digest_hex(hash_)), "content")

    def store_attachment_bytes(self, data: bytes, label: str | None = None) -> Attachment:
        """Store attachment bytes (write-once) and return the attachment reference."""
        hash_ = digest(data)
        key = self.attachment_key(hash_)
        self._put_once(key, data, content_type="application/octet-stream")
        return Attachment(hash=hash_, url=self.url(key), label=label, size=len(data))

    def store_attachment(self, path: Path, label: str | None = None) -> Attachment:
        """Store a file as an attachment.

        Raises:
            BadInput: when the file does not exist.
        """
        if not path.is_file():
            raise BadInput(f"attachment not found: {path}")
        return self.store_attachment_bytes(path.read_bytes(), label or path.name)

    def get_attachment(self, hash_: str) -> bytes:
        """Read an attachment and check it still hashes to `hash_`."""
        data = self._get(self.attachment_key(hash_))
        if digest(data) != hash_:
            raise IntegrityError(f"attachment {hash_} no longer matches its hash")
        return data

    # -- evidence and assets --------------------------------------------------------------

    def evidence_key(self, evidence_id: str) -> str:
        return self.key("raw/evidences", _shard(evidence_id), "index.json")

    def put_asset(self, asset: Asset) -> None:
        """Store an asset record; the first record for a uri is the one kept."""
        key = self.key("raw/assets", _shard(asset.id), "index.json")
        try:
            self._put_once(key, asset.to_json(), content_type="application/json")
        except IntegrityError:
            # asset records are addressed by uri, not content: a later one may relate more
            stored = Asset.model_validate_json(self._get(key))
            if stored.uri != asset.uri:
                raise

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
        try:
            head = self._call(
                f"check {key}",
                self.client.head_object,
                Bucket=self.bucket,
                Key=key,
                ChecksumMode="ENABLED",
            )
        except ClientError as exc:
            raise IntegrityError(f"attachment {attachment.hash} is not stored") from exc
        stored = head.get("ChecksumSHA256")
        expected = base64.b64encode(bytes.fromhex(digest_hex(attachment.hash))).decode()
        if stored and stored != expected:
            raise IntegrityError(f"attachment {attachment.hash} is stored with another checksum")

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
                    self.get_attachment(attachment.hash)
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
                    self.get_attachment(entry.sha256)
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
        """Create the bucket with Object Lock on and default retention (idempotent)."""
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
        self._locked = None

    def bucket_status(self) -> dict[str, Any]:
        """Whether the bucket is versioned and locked, and for how long it retains."""
        versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        return {
            "bucket": self.bucket,
            "versioned": versioning == "Enabled",
            "object_lock": self.object_lock,
            "retention_mode": self.retention_mode if self.object_lock else None,
            "retention_days": self.retention_days if self.object_lock else 0,
        }
