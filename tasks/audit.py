"""Audit steps: re-hashing what a change request and a deployed inventory refer to."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from changeflow.models import ChangeRequest
from changeflow.ports import EvidenceStore, Inventory, Verification

__all__ = ["verify_change_request", "verify_entries"]


@task(name="verify-change-request", cache_policy=NO_CACHE)
def verify_change_request(locker: EvidenceStore, cr: ChangeRequest) -> Verification:
    """Re-hash a CR's evidence summary, every evidence record in it and their attachments."""
    if not cr.evidence_summary_url or not cr.evidence_summary_sha256:
        return Verification(broken=[f"{cr.id}: has no evidence summary"])
    found = locker.verify_summary(cr.evidence_summary_url, cr.evidence_summary_sha256)
    found += locker.verify_evidence(cr.acceptance_evidence)
    return Verification(checked=found.checked, broken=[f"{cr.id}: {b}" for b in found.broken])


@task(name="verify-entries", cache_policy=NO_CACHE)
def verify_entries(locker: EvidenceStore, inventory: Inventory, ref: str) -> Verification:
    """Check every entry at `ref` has verifiable evidence and, when stored, its artifact."""
    return locker.verify_entries(list(inventory.entries(ref).values()))
