"""Re-verifying what an evidence store holds: which links to walk, and what counts as broken.

The walk is the same for every store; the store reads (and re-hashes) each record, and may read
them concurrently by passing its own `map`. Each broken link is one line naming what broke; a
store that cannot be reached is not a broken link, its error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from pydantic import BaseModel

from changeflow.errors import IntegrityError
from changeflow.models import Evidence, InventoryEntry, asset_id
from changeflow.summary import EvidenceSummary

__all__ = [
    "Mapper",
    "VerifiableRecords",
    "Verification",
    "verify_entries",
    "verify_evidence",
    "verify_summary",
]


class Verification(BaseModel):
    """What a re-hash found: how many records were checked, and each broken link on one line."""

    checked: int = 0
    broken: list[str] = []

    def __add__(self, other: Verification) -> Verification:
        return Verification(
            checked=self.checked + other.checked, broken=[*self.broken, *other.broken]
        )


class VerifiableRecords(Protocol):
    """The reads a verification needs; each raises `IntegrityError` for a broken record."""

    def get_evidence(self, evidence_id: str) -> Evidence: ...

    def verify_attachment(self, hash_: str) -> int: ...

    def get_summary(self, url: str, expected: str) -> EvidenceSummary: ...

    def evidence_for_assets_ids(self, asset_ids: Iterable[str]) -> dict[str, list[str]]: ...

    def holds_artifact(self, url: str) -> bool: ...


Mapper = Callable[[Callable[[str], Verification], list[str]], Iterable[Verification]]


def verify_evidence(
    store: VerifiableRecords, evidence_ids: Iterable[str], map_: Mapper = map
) -> Verification:
    """Re-hash evidence records and their attachments (each record and attachment counts)."""

    def one(evidence_id: str) -> Verification:
        try:
            record = store.get_evidence(evidence_id)
        except IntegrityError as exc:
            return Verification(checked=1, broken=[str(exc)])
        broken = []
        for attachment in record.attachments:
            try:
                store.verify_attachment(attachment.hash)
            except IntegrityError as exc:
                broken.append(f"evidence {evidence_id}: {exc}")
        return Verification(checked=1 + len(record.attachments), broken=broken)

    return sum(map_(one, sorted(set(evidence_ids))), Verification())


def verify_summary(
    store: VerifiableRecords, url: str, expected: str, map_: Mapper = map
) -> Verification:
    """Re-hash a deployment summary and everything it refers to."""
    try:
        summary = store.get_summary(url, expected)
    except IntegrityError as exc:
        return Verification(checked=1, broken=[str(exc)])
    named = verify_evidence(store, (item.evidence_id for item in summary.evidence), map_)
    return Verification(checked=1) + named


def verify_entries(
    store: VerifiableRecords, entries: list[InventoryEntry], map_: Mapper = map
) -> Verification:
    """Check each entry has evidence that verifies and, when stored here, its artifact."""
    checked, broken = 0, []
    found = store.evidence_for_assets_ids(asset_id(e.provenance) for e in entries)
    for entry in entries:
        if not found.get(asset_id(entry.provenance)):
            broken.append(f"entry {entry.name}: no evidence for {entry.provenance}")
        if store.holds_artifact(entry.artifact):
            checked += 1
            try:
                store.verify_attachment(entry.sha256)
            except IntegrityError as exc:
                broken.append(f"entry {entry.name}: artifact {exc}")
    evidence = verify_evidence(store, (e for ids in found.values() for e in ids), map_)
    return Verification(checked=checked, broken=broken) + evidence
