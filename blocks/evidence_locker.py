"""The evidence locker: content-addressed, write-once evidence on S3-compatible storage.

The block holds the configuration (saved in Prefect, or from `CHANGEFLOW_S3_*`) and the state
worth keeping between calls (the client, whether the bucket is locked, the keys it stored); the
work is done in `blocks.s3`: objects, layout, multipart, attachments, records, verification and
the bucket itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters
from pydantic import Field, HttpUrl, PrivateAttr

from blocks.s3 import bucket
from blocks.s3.attachments import Attachments
from blocks.s3.cache import RecordCache, default_cache_root
from blocks.s3.envelopes import Envelopes
from blocks.s3.layout import Layout
from blocks.s3.multipart import MIB
from blocks.s3.objects import DEFAULT_TIMEOUT, KnownKeys, S3Objects, s3_client
from blocks.s3.records import Records
from changeflow import verification
from changeflow.models import Asset, Attachment, Evidence, InventoryEntry
from changeflow.ports import Verification
from changeflow.settings import Settings
from changeflow.storage import BucketStatus, StorageCheck
from changeflow.summary import EvidenceSummary, FoundEvidence

__all__ = ["EvidenceLocker"]


class EvidenceLocker(Block):
    """Evidence records, their attachments and deployment summaries in one S3 bucket.

    Every object is content-addressed and written once (`If-None-Match: *` with a sha256
    checksum), under Object Lock retention where the bucket has it; every read re-hashes.
    It implements the `EvidenceStore` port; the work is done in `blocks.s3`, one job per module.

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
    _logo_url = HttpUrl(
        "https://cdn.sanity.io/images/3ugk85nk/production/"
        "d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
    )
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
    timeout: float = Field(
        default=DEFAULT_TIMEOUT,
        gt=0,
        description="Seconds a store that stops answering is waited on, over all attempts.",
    )
    multipart_threshold: int = Field(
        default=64 * MIB,
        ge=5 * MIB,
        description="Attachments larger than this many bytes stream up by multipart upload.",
    )
    multipart_part_size: int = Field(
        default=16 * MIB, ge=5 * MIB, description="Part size of a multipart upload, in bytes."
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
    _known: KnownKeys = PrivateAttr(default_factory=KnownKeys)
    # where verified records are kept locally (None: `$CHANGEFLOW_HOME/cache/evidence`)
    _cache_root: Path | None = PrivateAttr(default=None)

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
            timeout=settings.s3_timeout,
        )

    # -- what the work is done with ------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client, with bounded retries and a pool sized for `max_concurrency`."""
        with self._lock:
            if self._client is None:
                self._client = s3_client(self.credentials, self.max_concurrency, self.timeout)
            return self._client

    @property
    def layout(self) -> Layout:
        """Where each record lives in the bucket."""
        return Layout(self.prefix)

    def key(self, *parts: str) -> str:
        """The object key for `parts` below the locker's prefix."""
        return self.layout.key(*parts)

    def evidence_key(self, evidence_id: str) -> str:
        """The key of an evidence record."""
        return self.layout.evidence(evidence_id)

    def url(self, key: str) -> str:
        """The `s3://` URL of a key in the bucket."""
        return self._objects().url(key)

    def _objects(self) -> S3Objects:
        endpoint = self.credentials.aws_client_parameters.endpoint_url or "AWS S3"
        return S3Objects(self.client, self.bucket, str(endpoint), self._retention)

    def _retention(self) -> dict[str, Any]:
        # asked at a write only (see S3Objects.retention)
        if not self.object_lock:
            return {}
        return {
            "ObjectLockMode": self.retention_mode,
            "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=self.retention_days),
        }

    def _attachments(self) -> Attachments:
        return Attachments(
            self._objects(),
            self.layout,
            self._known,
            multipart_threshold=self.multipart_threshold,
            part_size=self.multipart_part_size,
            part_concurrency=self.multipart_concurrency,
        )

    def _records(self) -> Records:
        return Records(self._attachments(), self.max_concurrency, self._record_cache())

    def _record_cache(self) -> RecordCache:
        endpoint = self.credentials.aws_client_parameters.endpoint_url or "AWS S3"
        root = self._cache_root or default_cache_root()
        return RecordCache(root, f"{endpoint}\n{self.bucket}\n{self.prefix}")

    def use_record_cache(self, root: Path) -> None:
        """Keep verified evidence records under `root` instead of `$CHANGEFLOW_HOME`."""
        self._cache_root = root

    def _list(self, prefix: str) -> list[str]:
        return self._objects().list(prefix)

    # -- attachments ----------------------------------------------------------------------

    def store_attachment_bytes(self, data: bytes, label: str | None = None) -> Attachment:
        """Store attachment bytes (write-once) and return the attachment reference."""
        return self._attachments().store_bytes(data, label)

    def store_attachment(self, path: Path, label: str | None = None) -> Attachment:
        """Store a file as an attachment; above `multipart_threshold` it streams by multipart.

        Raises:
            BadInput: when the file does not exist.
        """
        return self._attachments().store_file(path, label)

    def get_attachment(self, hash_: str) -> bytes:
        """Read an attachment and check it still hashes to `hash_` (in memory: small ones)."""
        return self._attachments().get(hash_)

    def verify_attachment(self, hash_: str) -> int:
        """Re-hash a stored attachment while it streams (constant memory); return its size.

        Raises:
            IntegrityError: when it is missing or no longer hashes to `hash_`.
        """
        return self._attachments().verify(hash_)

    def download_attachment(self, hash_: str, target: Path) -> int:
        """Stream an attachment to `target`, which appears only once it verified; its size.

        Raises:
            IntegrityError: when it is missing or no longer hashes to `hash_`.
        """
        return self._attachments().download(hash_, target)

    def holds_artifact(self, url: str) -> bool:
        """Whether an entry's artifact URL (`s3://<bucket>/...`) points into this locker."""
        return self._objects().holds(url)

    # -- evidence, assets and summaries ---------------------------------------------------

    def put_asset(self, asset: Asset) -> None:
        """Store an asset record; the first record for a uri is the one kept."""
        self._records().put_asset(asset)

    def put_evidence(
        self, evidence: Evidence, assets: Iterable[Asset] = (), envelope: bytes | None = None
    ) -> Evidence:
        """Store a sealed evidence record (with its signed `envelope`), its assets and the
        per-asset markers.

        Attachments must already be stored: the record is written only once they verify, and
        the markers only after the record, so a reader never finds a dangling link.
        """
        return self._records().put_evidence(evidence, assets, envelope)

    def get_evidence(self, evidence_id: str) -> Evidence:
        """Read an evidence record and check it still hashes to its id."""
        return self._records().get_evidence(evidence_id)

    def evidence_ids(self, asset_id: str) -> list[str]:
        """Ids of every evidence record about an asset: one LIST of its markers."""
        return self._records().evidence_ids(asset_id)

    def evidence_for_assets_ids(self, asset_ids: Iterable[str]) -> dict[str, list[str]]:
        """The evidence ids about each asset, listed with bounded concurrency."""
        return self._records().evidence_ids_for_assets(asset_ids)

    def evidence_for_assets(self, asset_ids: Iterable[str]) -> dict[str, list[Evidence]]:
        """Every evidence record about each asset, read with bounded concurrency."""
        return self._records().evidence_for_assets(asset_ids)

    def find_evidence(self, asset_ids: Iterable[str]) -> FoundEvidence:
        """Every record about the assets; one that cannot be read is reported, not raised."""
        return self._records().find_evidence(asset_ids)

    def put_summary(self, summary: EvidenceSummary) -> tuple[str, str]:
        """Store a deployment run's summary once; return its url and sha256 digest."""
        return self._records().put_summary(summary)

    def get_summary(self, url: str, expected: str) -> EvidenceSummary:
        """Read a summary by url and check it against the digest its CR holds."""
        return self._records().get_summary(url, expected)

    # -- signed envelopes (blocks.s3.envelopes) -------------------------------------------

    def _envelopes(self) -> Envelopes:
        return Envelopes(self._objects(), self.layout)

    def put_evidence_envelope(self, evidence_id: str, envelope: bytes) -> None:
        """Store an evidence record's signed envelope beside it."""
        self._envelopes().put_evidence_envelope(evidence_id, envelope)

    def get_evidence_envelope(self, evidence_id: str) -> bytes | None:
        """An evidence record's envelope, or None when it has none."""
        return self._envelopes().get_evidence_envelope(evidence_id)

    def put_provenance(self, run_id: str, envelope: bytes) -> str:
        """Store a build's signed provenance; its sha256."""
        return self._envelopes().put_provenance(run_id, envelope)

    def get_provenance(self, run_id: str) -> list[bytes]:
        """Every provenance envelope stored for a build."""
        return self._envelopes().get_provenance(run_id)

    def put_attestation(self, envelope: bytes) -> tuple[str, str]:
        """Store a signed decision; its url and sha256."""
        return self._envelopes().put_attestation(envelope)

    def get_attestation(self, url: str, expected: str) -> bytes:
        """A signed decision, checked against the digest its CR recorded."""
        return self._envelopes().get_attestation(url, expected)

    # -- verification ---------------------------------------------------------------------

    def verify_evidence(self, evidence_ids: Iterable[str]) -> Verification:
        """Re-hash evidence records and their attachments; a line for each that does not
        verify."""
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return verification.verify_evidence(self, evidence_ids, pool.map)

    def verify_summary(self, url: str, expected: str) -> Verification:
        """Re-hash a deployment summary and everything it refers to."""
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return verification.verify_summary(self, url, expected, pool.map)

    def verify_entries(self, entries: list[InventoryEntry]) -> Verification:
        """Check each entry has evidence that verifies and, when stored here, its artifact."""
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return verification.verify_entries(self, entries, pool.map)

    # -- the bucket itself ----------------------------------------------------------------

    @property
    def object_lock(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once)."""
        if self._locked is None:
            self._locked = bucket.object_lock_enabled(self._objects())
        return self._locked

    def create_bucket(self) -> None:
        """Create the bucket with Object Lock on and default retention (idempotent).

        The default rule (the locker's mode and days) covers objects written without explicit
        retention; a bucket that already has a rule keeps it.
        """
        self._locked = bucket.create_bucket(
            self._objects(), self.retention_mode, self.retention_days
        )

    def bucket_status(self) -> BucketStatus:
        """Whether the bucket is versioned and locked, and for how long it retains."""
        return bucket.bucket_status(
            self._objects(), self.object_lock, self.retention_mode, self.retention_days
        )

    def check_storage(self) -> StorageCheck:
        """Check the bucket can keep evidence immutable for at least `retention_days`.

        Versioned, locked, and retaining (the shortest of the bucket's default rule and of a
        probe written like evidence) at least `retention_days` in `retention_mode`: all three
        are needed for `ok`; see `blocks.s3.bucket.check_storage` and
        `changeflow.storage.judge_storage`.
        """
        return bucket.check_storage(
            self._objects(),
            self.layout,
            self.bucket_status(),
            mode=self.retention_mode,
            days=self.retention_days,
        )
