"""The evidence store in memory: content-addressed, write-once, re-hashed on every read.

It keeps what the flows rely on from the evidence locker: a key holds one body for ever (the
same body again is a no-op, another one is refused), every read checks the bytes still hash to
what refers to them, and the storage check is judged by the domain's `judge_storage`.
`overwrite` changes stored bytes behind the store's back, as someone with write access to an
unlocked bucket could, so a test can see the tampering found.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from changeflow import verification
from changeflow.canonical import digest, digest_hex
from changeflow.errors import BadInput, IntegrityError
from changeflow.models import Asset, Attachment, Evidence, InventoryEntry
from changeflow.storage import BucketStatus, Retention, StorageCheck, judge_storage
from changeflow.stored import stored_evidence, stored_summary
from changeflow.summary import EvidenceSummary, FoundEvidence, found_evidence, unreadable_because
from changeflow.verification import Verification

__all__ = ["MemoryEvidenceStore"]


class MemoryEvidenceStore:
    """Evidence records, attachments and deployment summaries held in a dict.

    Args:
        name: names the store in its URLs (`memory://<name>/...`).
        locked: whether the store claims Object Lock (and so retention); an unlocked one fails
            the storage check.
        versioned: whether the store claims versioning.
        retention_mode: the retention mode required and, when locked, applied.
        retention_days: the retention days required and, when locked, applied.
    """

    def __init__(
        self,
        name: str = "evidence",
        *,
        locked: bool = True,
        versioned: bool = True,
        retention_mode: str = "COMPLIANCE",
        retention_days: int = 365,
    ) -> None:
        self.name = name
        self.locked = locked
        self.versioned = versioned
        self.retention_mode = retention_mode
        self.retention_days = retention_days
        self._objects: dict[str, bytes] = {}
        # asset id -> ids of the evidence about it: the locker's per-asset markers
        self._about: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # -- keys and raw objects -------------------------------------------------------------

    @staticmethod
    def attachment_key(hash_: str) -> str:
        """The key of an attachment's bytes."""
        return f"attachments/{digest_hex(hash_)}"

    @staticmethod
    def evidence_key(evidence_id: str) -> str:
        """The key of an evidence record."""
        return f"evidences/{evidence_id}"

    def url(self, key: str) -> str:
        """Where an object is, as records refer to it."""
        return f"memory://{self.name}/{key}"

    def overwrite(self, key: str, data: bytes) -> None:
        """Replace an object's bytes out of band, bypassing write-once (for tamper tests)."""
        with self._lock:
            self._objects[key] = data

    def _put_once(self, key: str, body: bytes) -> None:
        with self._lock:
            stored = self._objects.setdefault(key, body)
        if stored != body:
            raise IntegrityError(f"{self.url(key)} already holds different content")

    def _get(self, key: str) -> bytes:
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise IntegrityError(f"{self.url(key)} is missing")
        return data

    # -- attachments ----------------------------------------------------------------------

    def store_attachment_bytes(self, data: bytes, label: str | None = None) -> Attachment:
        """Store bytes once under their sha256."""
        hash_ = digest(data)
        key = self.attachment_key(hash_)
        self._put_once(key, data)
        return Attachment(hash=hash_, url=self.url(key), label=label, size=len(data))

    def store_attachment(self, path: Path, label: str | None = None) -> Attachment:
        """Store a file's bytes once under their sha256.

        Raises:
            BadInput: when the file does not exist.
        """
        if not path.is_file():
            raise BadInput(f"attachment not found: {path}")
        return self.store_attachment_bytes(path.read_bytes(), label or path.name)

    def get_attachment(self, hash_: str) -> bytes:
        """An attachment's bytes, re-hashed.

        Raises:
            IntegrityError: when it is missing or no longer hashes to `hash_`.
        """
        data = self._get(self.attachment_key(hash_))
        if digest(data) != hash_:
            raise IntegrityError(f"attachment {hash_} no longer matches its hash")
        return data

    def download_attachment(self, hash_: str, target: Path) -> int:
        """Write an attachment to `target`, which appears only once it verified; its size."""
        data = self.get_attachment(hash_)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(data)
        partial.replace(target)
        return len(data)

    def holds_artifact(self, url: str) -> bool:
        """Whether an entry's artifact URL points into this store."""
        return url.startswith(self.url(""))

    # -- evidence -------------------------------------------------------------------------

    def put_evidence(
        self, evidence: Evidence, assets: Iterable[Asset] = (), envelope: bytes | None = None
    ) -> Evidence:
        """Store a sealed evidence record with its envelope, and link it to its assets.

        The asset records themselves are not kept: the links are by asset id, and nothing
        reads an asset record back through the port.

        Raises:
            IntegrityError: when the record does not hash to its id, one of its attachments is
                not stored, or another record is stored under its id.
        """
        sealed = evidence if evidence.id else evidence.sealed()
        if not sealed.is_sealed():
            raise IntegrityError(f"evidence {sealed.id} does not hash to its id")
        keys = {a.hash: self.attachment_key(a.hash) for a in sealed.attachments}
        with self._lock:
            missing = [h for h, key in keys.items() if key not in self._objects]
        if missing:
            raise IntegrityError(f"attachment {missing[0]} is not stored")
        if envelope is not None:
            self.put_evidence_envelope(sealed.id, envelope)
        self._put_once(self.evidence_key(sealed.id), sealed.to_json())
        # the links come last, so a reader never finds one to a record not yet written
        with self._lock:
            for aid in sealed.assets:
                self._about.setdefault(aid, set()).add(sealed.id)
        return sealed

    def get_evidence(self, evidence_id: str) -> Evidence:
        """One evidence record, re-hashed.

        Raises:
            IntegrityError: when it is missing, unreadable or no longer hashes to its id.
        """
        raw = self._get(self.evidence_key(evidence_id))
        return stored_evidence(evidence_id, raw)

    def _evidence_ids(self, asset_ids: Iterable[str]) -> dict[str, list[str]]:
        with self._lock:
            return {aid: sorted(self._about.get(aid, ())) for aid in sorted(set(asset_ids))}

    def evidence_for_assets(self, asset_ids: Iterable[str]) -> dict[str, list[Evidence]]:
        """Every evidence record about each asset, in id order."""
        listed = self._evidence_ids(asset_ids)
        return {aid: [self.get_evidence(e) for e in ids] for aid, ids in listed.items()}

    def find_evidence(self, asset_ids: Iterable[str]) -> FoundEvidence:
        """Every record about the assets; one that cannot be read is reported with the reason."""
        listed = self._evidence_ids(asset_ids)
        read: dict[str, Evidence | str] = {}
        for evidence_id in sorted({e for ids in listed.values() for e in ids}):
            try:
                read[evidence_id] = self.get_evidence(evidence_id)
            except IntegrityError as exc:
                read[evidence_id] = unreadable_because(exc)
        return found_evidence(listed, read)

    def link(self, asset: str, evidence_id: str) -> None:
        """Name a record among an asset's, as a marker written out of band would."""
        with self._lock:
            self._about.setdefault(asset, set()).add(evidence_id)

    # -- signed envelopes -----------------------------------------------------------------

    def put_evidence_envelope(self, evidence_id: str, envelope: bytes) -> None:
        """Store an evidence record's signed envelope beside it (write-once)."""
        self._put_once(f"envelopes/evidences/{evidence_id}", envelope)

    def get_evidence_envelope(self, evidence_id: str) -> bytes | None:
        """An evidence record's envelope, or None when it has none."""
        with self._lock:
            return self._objects.get(f"envelopes/evidences/{evidence_id}")

    def put_provenance(self, run_id: str, envelope: bytes) -> str:
        """Store one signed provenance of a build; its sha256."""
        hash_ = digest(envelope)
        self._put_once(f"envelopes/provenance/{run_id}/{digest_hex(hash_)}", envelope)
        return hash_

    def get_provenance(self, run_id: str) -> list[bytes]:
        """Every provenance envelope stored for a build, in key order."""
        prefix = f"envelopes/provenance/{run_id}/"
        with self._lock:
            return [v for k, v in sorted(self._objects.items()) if k.startswith(prefix)]

    def put_attestation(self, envelope: bytes) -> tuple[str, str]:
        """Store a signed decision once; its url and sha256."""
        hash_ = digest(envelope)
        key = f"attestations/{digest_hex(hash_)}"
        self._put_once(key, envelope)
        return self.url(key), hash_

    def get_attestation(self, url: str, expected: str) -> bytes:
        """A signed decision, checked against the sha256 its CR recorded.

        Raises:
            IntegrityError: when it is not in this store, missing, or does not match.
        """
        if not self.holds_artifact(url):
            raise IntegrityError(f"attestation {url} is not in {self.url('')}")
        body = self._get(url.removeprefix(self.url("")))
        if digest(body) != expected:
            raise IntegrityError(f"attestation {url} does not match {expected}")
        return body

    # -- deployment summaries -------------------------------------------------------------

    def put_summary(self, summary: EvidenceSummary) -> tuple[str, str]:
        """Store a deployment's evidence summary once; its url and sha256."""
        body = summary.to_json()
        key = f"summaries/{summary.scope}"
        self._put_once(key, body)
        return self.url(key), digest(body)

    def get_summary(self, url: str, expected: str) -> EvidenceSummary:
        """A stored summary, checked against the sha256 its CR recorded.

        Raises:
            IntegrityError: when it is not in this store, missing, or does not match.
        """
        if not self.holds_artifact(url):
            raise IntegrityError(f"summary {url} is not in {self.url('')}")
        body = self._get(url.removeprefix(self.url("")))
        return stored_summary(url, body, expected)

    # -- verification ---------------------------------------------------------------------

    def verify_attachment(self, hash_: str) -> int:
        """Re-hash an attachment; its size."""
        return len(self.get_attachment(hash_))

    def evidence_for_assets_ids(self, asset_ids: Iterable[str]) -> dict[str, list[str]]:
        """The evidence ids about each asset."""
        return self._evidence_ids(asset_ids)

    def verify_evidence(self, evidence_ids: Iterable[str]) -> Verification:
        """Re-hash evidence records and their attachments."""
        return verification.verify_evidence(self, evidence_ids)

    def verify_summary(self, url: str, expected: str) -> Verification:
        """Re-hash a summary and everything it names."""
        return verification.verify_summary(self, url, expected)

    def verify_entries(self, entries: list[InventoryEntry]) -> Verification:
        """Re-hash the evidence and stored artifacts behind inventory entries."""
        return verification.verify_entries(self, entries)

    # -- the store itself -----------------------------------------------------------------

    def check_storage(self) -> StorageCheck:
        """Whether the store keeps evidence immutable for the required time, as configured."""
        applied = Retention(mode=self.retention_mode, days=self.retention_days)
        return judge_storage(
            BucketStatus(
                bucket=self.name,
                versioned=self.versioned,
                object_lock=self.locked,
                retention_mode=self.retention_mode if self.locked else None,
                retention_days=self.retention_days if self.locked else 0,
            ),
            applied if self.locked else None,
            applied if self.locked else None,
            required_days=self.retention_days,
            required_mode=self.retention_mode,
            checked_at=datetime.now(UTC),
        )
