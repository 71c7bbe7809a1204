"""Audit steps: re-hashing what a change request and a deployed inventory refer to, and the
chain behind a CR (its signed history, checkpoints, decision, emergency review)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.change_management import GitChangeManagement
from blocks.checkpoints import Checkpoints, record_checkpoint
from blocks.cr_history import GitHistory
from blocks.signing import Trust, open_envelope
from blocks.ssh_signatures import verify
from changeflow.approvals import approval_problems
from changeflow.chain import (
    checkpoint_problems,
    emergency_problems,
    history_problems,
    judges_history,
)
from changeflow.change import deployed_by
from changeflow.decision_check import decision_problems
from changeflow.errors import IntegrityError, StorageUnavailable
from changeflow.evidence_trust import Opened
from changeflow.models import ChangeRequest
from changeflow.ports import ChangeManagement, EvidenceStore, Inventory, Stores, Verification
from changeflow.summary import EvidenceSummary
from changeflow.trust import TrustPolicy

__all__ = [
    "check_chain",
    "checkpoint",
    "deployers",
    "find_deployers",
    "verify_approvals",
    "verify_chain",
    "verify_change_request",
    "verify_entries",
]


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


def deployers(
    changes: ChangeManagement, inventory: Inventory, environment: str, tags: dict[str, str]
) -> dict[str, ChangeRequest | None]:
    """Region -> the CR that deployed its labelled commit (`tags`: region -> commit).

    Only the CRs that deployed an entry at those commits are read (`ChangeManagement.
    deployments`); the environment's own CRs only for a commit none of them deployed (a CR
    that only deleted entries names no sha256): never every CR ever filed.
    """
    digests = {
        e.sha256 for commit in set(tags.values()) for e in inventory.entries(commit).values()
    }
    crs = changes.deployments(sorted(digests))
    found = {r: deployed_by(crs, environment, r, c) for r, c in sorted(tags.items())}
    if None in found.values():
        crs = changes.list(environment)
        found = {r: cr or deployed_by(crs, environment, r, tags[r]) for r, cr in found.items()}
    return found


@task(name="find-deployers", cache_policy=NO_CACHE)
def find_deployers(
    changes: ChangeManagement, inventory: Inventory, environment: str, tags: dict[str, str]
) -> dict[str, ChangeRequest | None]:
    """The CR behind each region's deployed label (`deployers`)."""
    return deployers(changes, inventory, environment, tags)


@task(name="verify-chain", cache_policy=NO_CACHE)
def verify_chain(
    evidence: EvidenceStore, changes: ChangeManagement, cr: ChangeRequest, trust: Trust | None
) -> Verification:
    """Check the chain behind a CR (`check_chain`) under the trust file `trust`.

    (The parsed file is passed as `Trust`: Prefect reads a `TrustPolicy`'s `keys` field as
    a mapping's `keys()` when it collects a task's inputs.)
    """
    return check_chain(evidence, changes, cr, trust.policy if trust else None)


def check_chain(
    evidence: EvidenceStore, changes: ChangeManagement, cr: ChangeRequest, trust: TrustPolicy | None
) -> Verification:
    """The chain behind a CR, each problem naming the CR and its rule (`changeflow.chain`).

    Its history in the git change-management repo (signed commits, legal transitions, every
    signed checkpoint still in the history), its signed decision recomputed from its summary
    (`changeflow.decision_check`), and an emergency's retroactive review. The history rules
    need git history and a trust file naming a `cr-history` key; the decision rules a trust
    file naming a `vsa` key.
    """
    problems = emergency_problems(cr)
    checked = 1
    if isinstance(changes, GitChangeManagement) and judges_history(trust):
        changes.git.fetch()
        history = GitHistory(changes.git.path).for_change(cr.id)
        commits = history.commits(cr.id, trust)
        problems += history_problems(cr.id, commits, trust)
        found = Checkpoints(evidence).opened(cr.id, trust) if trust else []
        problems += checkpoint_problems(cr.id, found, history.head(), history.contains, trust)
        checked += len(commits) + len(found)
    if trust is not None:
        vsa, summary = _decision(evidence, cr, trust)
        problems += decision_problems(cr, vsa, summary, trust)
        checked += vsa is not None
    return Verification(checked=checked, broken=problems)


def _decision(
    evidence: EvidenceStore, cr: ChangeRequest, trust: TrustPolicy
) -> tuple[Opened | str | None, EvidenceSummary | None]:
    vsa: Opened | str | None = None
    if cr.decision_attestation is not None:
        try:
            vsa = open_envelope(evidence.get_attestation(*cr.decision_attestation), trust)
        except IntegrityError as exc:
            vsa = str(exc)
    summary = None
    if cr.evidence_summary_url and cr.evidence_summary_sha256:
        try:
            summary = evidence.get_summary(cr.evidence_summary_url, cr.evidence_summary_sha256)
        except IntegrityError:
            summary = None  # `verify_change_request` names it
    return vsa, summary


def checkpoint(stores: Stores, cr_id: str) -> None:
    """Checkpoint a CR's head commit in the locker after a write (`record_checkpoint`).

    Called by the task that wrote, right after its write: a locker that cannot be reached
    leaves the write without its checkpoint, said in a warning, and the next checkpoint covers
    it; the write is not retried for it.
    """
    try:
        record_checkpoint(stores.changes, stores.evidence, cr_id)
    except StorageUnavailable as exc:
        get_run_logger().warning(
            "%s: no checkpoint written (the next write's covers it): %s", cr_id, exc
        )
