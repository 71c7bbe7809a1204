"""Audit steps: re-hashing what a change request and a deployed inventory refer to."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.evidence_locker import EvidenceLocker
from blocks.inventory import GitInventory
from changeflow.models import ChangeRequest

__all__ = ["verify_change_request", "verify_entries"]


@task(name="verify-change-request", cache_policy=NO_CACHE)
def verify_change_request(locker: EvidenceLocker, cr: ChangeRequest) -> tuple[int, list[str]]:
    """Re-hash a CR's evidence summary, every evidence record in it and their attachments."""
    if not cr.evidence_summary_url or not cr.evidence_summary_sha256:
        return 0, [f"{cr.id}: has no evidence summary"]
    checked, broken = locker.verify_summary(cr.evidence_summary_url, cr.evidence_summary_sha256)
    more, broken_more = locker.verify_evidence(cr.acceptance_evidence)
    return checked + more, [f"{cr.id}: {b}" for b in [*broken, *broken_more]]


@task(name="verify-entries", cache_policy=NO_CACHE)
def verify_entries(
    locker: EvidenceLocker, inventory: GitInventory, ref: str
) -> tuple[int, list[str]]:
    """Check every entry at `ref` has verifiable evidence and, when stored, its artifact."""
    return locker.verify_entries(list(inventory.entries(ref).values()))
