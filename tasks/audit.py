"""Audit steps: re-hashing what a change request and a deployed inventory refer to."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.ssh_signatures import verify
from changeflow.approvals import approval_problems
from changeflow.models import ChangeRequest
from changeflow.ports import EvidenceStore, Inventory, Verification

__all__ = ["verify_approvals", "verify_change_request", "verify_entries"]


@task(name="verify-change-request", cache_policy=NO_CACHE)
def verify_change_request(locker: EvidenceStore, cr: ChangeRequest) -> Verification:
    """Re-hash a CR's evidence summary, every evidence record in it and their attachments."""
    if not cr.evidence_summary_url or not cr.evidence_summary_sha256:
        return Verification(broken=[f"{cr.id}: has no evidence summary"])
    found = locker.verify_summary(cr.evidence_summary_url, cr.evidence_summary_sha256)
    found += locker.verify_evidence(cr.acceptance_evidence)
    return Verification(checked=found.checked, broken=[f"{cr.id}: {b}" for b in found.broken])


@task(name="verify-approvals", cache_policy=NO_CACHE)
def verify_approvals(cr: ChangeRequest) -> Verification:
    """Re-check every person's decision on a CR: signature, separation of duties, quorum.

    Each decision counts as one record checked; each problem is one line naming the CR and
    the rule it breaks (`changeflow.approvals.approval_problems`).
    """
    people = [a for a in cr.approvals if not a.automatic]
    return Verification(checked=len(people), broken=approval_problems(cr, verify))


@task(name="verify-entries", cache_policy=NO_CACHE)
def verify_entries(locker: EvidenceStore, inventory: Inventory, ref: str) -> Verification:
    """Check every entry at `ref` has verifiable evidence and, when stored, its artifact."""
    return locker.verify_entries(list(inventory.entries(ref).values()))
