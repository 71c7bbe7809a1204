"""Re-hashing what the locker holds: evidence, summaries and the evidence behind entries.

Each broken link is one line naming what broke; a store that cannot be reached is not a broken
link, it raises `StorageUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from blocks.s3.records import Records
from changeflow.errors import IntegrityError
from changeflow.models import InventoryEntry, asset_id
from changeflow.ports import Verification

__all__ = ["verify_entries", "verify_evidence", "verify_summary"]


def verify_evidence(records: Records, evidence_ids: Iterable[str]) -> Verification:
    """Re-hash evidence records and their attachments (each record and attachment counts)."""

    def one(evidence_id: str) -> Verification:
        try:
            record = records.get_evidence(evidence_id)
        except IntegrityError as exc:
            return Verification(checked=1, broken=[str(exc)])
        broken = []
        for attachment in record.attachments:
            try:
                records.attachments.verify(attachment.hash)
            except IntegrityError as exc:
                broken.append(f"evidence {evidence_id}: {exc}")
        return Verification(checked=1 + len(record.attachments), broken=broken)

    ids = sorted(set(evidence_ids))
    with ThreadPoolExecutor(records.concurrency) as pool:
        return sum(pool.map(one, ids), Verification())


def verify_summary(records: Records, url: str, expected: str) -> Verification:
    """Re-hash a deployment summary and everything it refers to."""
    try:
        summary = records.get_summary(url, expected)
    except IntegrityError as exc:
        return Verification(checked=1, broken=[str(exc)])
    found = verify_evidence(records, (item.evidence_id for item in summary.evidence))
    return Verification(checked=1) + found


def verify_entries(records: Records, entries: list[InventoryEntry]) -> Verification:
    """Check each entry has evidence that verifies and, when stored here, its artifact."""
    checked, broken = 0, []
    found = records.evidence_ids_for_assets(asset_id(e.provenance) for e in entries)
    for entry in entries:
        if not found.get(asset_id(entry.provenance)):
            broken.append(f"entry {entry.name}: no evidence for {entry.provenance}")
        if records.objects.holds(entry.artifact):
            checked += 1
            try:
                records.attachments.verify(entry.sha256)
            except IntegrityError as exc:
                broken.append(f"entry {entry.name}: artifact {exc}")
    evidence = verify_evidence(records, (e for ids in found.values() for e in ids))
    return Verification(checked=checked, broken=broken) + evidence
