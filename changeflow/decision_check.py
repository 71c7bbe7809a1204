"""The `decision.vsa` rule: a CR's signed decision verifies and agrees with its evidence.

The deploy worker signs each CR decision as a SLSA Verification Summary (`flows/attest.py`).
An auditor checks that a key the trust file lets sign `vsa` signed it inside its window, that
it is about this CR, under the policy the CR records, over the summary the CR names, with the
CR's answer; and recomputes readiness from that summary under that policy: a decision that
says PASSED where the evidence says not ready is named (`decision.recomputed`). A FAILED
decision may be stricter than the evidence alone (overdue incidents, an earlier failed
acceptance), so only PASSED is recomputed.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from changeflow.attestations import VSA_V1, statement_time
from changeflow.canonical import canonical_json, digest
from changeflow.evidence_trust import Opened
from changeflow.models import ChangeRequest
from changeflow.readiness import ReadinessPolicy, deployment_ready
from changeflow.summary import EvidenceSummary
from changeflow.trust import VSA, TrustPolicy

__all__ = ["decision_problems"]


def decision_problems(
    cr: ChangeRequest,
    vsa: Opened | str | None,
    summary: EvidenceSummary | None,
    trust: TrustPolicy | None,
) -> list[str]:
    """What is wrong with a CR's signed decision.

    Args:
        cr: the CR as its history holds it now.
        vsa: its decision's envelope as the adapter opened it, why it could not be read, or
            None when the CR names none.
        summary: the evidence summary the CR names (read and re-hashed), when readable.
        trust: the trust file; without one decisions are not judged.
    """
    if trust is None or not trust.signers_of(VSA):
        return []
    where = f"{cr.id}: decision.vsa"
    if cr.decision_attestation is None or vsa is None:
        return [f"{where}: it has no signed decision"] if cr.trust_sha256 else []
    if isinstance(vsa, str):
        return [f"{where}: {vsa}"]
    if vsa.problem:
        return [f"{where}: {vsa.problem}"]
    statement = vsa.statement
    predicate = statement.get("predicate") or {}
    when = statement_time(statement)
    if statement.get("predicateType") != VSA_V1 or not isinstance(predicate, dict) or not when:
        return [f"{where}: the envelope holds no verification summary"]
    if why := trust.judge(VSA, vsa.keyids, when):
        return [f"{where}: {why}"]
    problems = [f"{where}: {p}" for p in _disagreements(cr, predicate, statement)]
    passed = predicate.get("verificationResult") == "PASSED"
    if passed and summary is not None:
        problems += _recomputed(cr, summary, when)
    return problems


def _disagreements(
    cr: ChangeRequest, predicate: dict[str, object], statement: dict[str, object]
) -> list[str]:
    problems = []
    if predicate.get("resourceUri") != f"urn:changeflow:change-request:{cr.id}":
        problems.append(f"it is about {predicate.get('resourceUri')!r}")
    policy = predicate.get("policy")
    signed_policy = policy.get("digest", {}) if isinstance(policy, dict) else {}
    recorded = (cr.policy_digest or "").removeprefix("sha256:")
    if not isinstance(signed_policy, dict) or signed_policy.get("sha256") != recorded:
        problems.append("it was decided under another policy than the CR records")
    elif cr.policy and digest(canonical_json(cr.policy)) != cr.policy_digest:
        problems.append("the CR's policy does not match its recorded digest")
    inputs = predicate.get("inputAttestations")
    named = {
        str(i.get("uri")): (i.get("digest") or {}).get("sha256")
        for i in (inputs if isinstance(inputs, list) else [])
        if isinstance(i, dict)
    }
    summary_sha = (cr.evidence_summary_sha256 or "").removeprefix("sha256:")
    if named.get(cr.evidence_summary_url or "") != summary_sha:
        problems.append("it was not decided on the evidence summary the CR names")
    if (predicate.get("verificationResult") == "PASSED") != cr.deployment_ready:
        problems.append(
            f"it says {predicate.get('verificationResult')}, the CR says "
            f"{'ready' if cr.deployment_ready else 'not ready'}"
        )
    subjects = statement.get("subject")
    signed_bom = {
        str(s.get("name")): f"sha256:{(s.get('digest') or {}).get('sha256')}"
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict)
    }
    if cr.bom and signed_bom != cr.bom:
        problems.append("its artifacts are not the ones the CR deploys")
    return problems


def _recomputed(cr: ChangeRequest, summary: EvidenceSummary, when: datetime) -> list[str]:
    try:
        policy = ReadinessPolicy.model_validate(cr.policy) if cr.policy else ReadinessPolicy()
    except ValidationError:
        return [f"{cr.id}: decision.recomputed: the CR's recorded policy cannot be read"]
    again = deployment_ready(summary, policy, today=when.date())
    if again.ready:
        return []
    return [
        f"{cr.id}: decision.recomputed: the decision says PASSED, but its summary under the "
        f"recorded policy is not ready: {again.reasons[0]}"
    ]
