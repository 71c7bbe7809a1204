"""Readiness policy: may a change request be approved without a person?"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from changeflow.models import EvidenceResult
from changeflow.summary import UNREADABLE, UNTRUSTED_BUILD, EvidenceSummary

__all__ = [
    "DEFAULT_REQUIRED_TYPES",
    "IMMUTABLE_STORAGE",
    "CheckLevel",
    "EvidenceCheck",
    "Readiness",
    "ReadinessPolicy",
    "deployment_ready",
]

DEFAULT_REQUIRED_TYPES = (
    "com.ibm.unit_tests",
    "com.ibm.static_scan",
    "com.ibm.detect_secrets",
    "com.ibm.sbom",
)
"""What CI must leave about every artifact."""

IMMUTABLE_STORAGE = "com.ibm.immutable_storage"
"""What the deploy run itself records: the locker keeps evidence immutable."""


class CheckLevel(StrEnum):
    required = "required"
    required_if_present = "required_if_present"
    recommended = "recommended"


class EvidenceCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evidence_type_id: str
    level: CheckLevel = CheckLevel.required


class ReadinessPolicy(BaseModel):
    """Which evidence each deployed artifact must carry, and how strictly."""

    model_config = ConfigDict(extra="forbid")

    checks: list[EvidenceCheck] = Field(
        default_factory=lambda: [
            EvidenceCheck(evidence_type_id=t) for t in (*DEFAULT_REQUIRED_TYPES, IMMUTABLE_STORAGE)
        ]
    )


class Readiness(BaseModel):
    """The decision and every reason behind it."""

    ready: bool
    reasons: list[str] = Field(default_factory=list, description="What blocks approval.")
    warnings: list[str] = Field(default_factory=list, description="What only warns.")

    def blocked_by(self, reasons: list[str]) -> Readiness:
        """The same decision with more blocking reasons (not ready when there are any)."""
        if not reasons:
            return self
        return Readiness(ready=False, reasons=[*self.reasons, *reasons], warnings=self.warnings)


def deployment_ready(
    summary: EvidenceSummary,
    policy: ReadinessPolicy,
    *,
    today: date,
    integrity_failures: list[str] | None = None,
) -> Readiness:
    """Decide whether every asset of the summary carries passing evidence.

    Missing, pending or failed evidence of a required type blocks, and so do findings past their
    due date, any evidence that did not verify and any record that cannot be read (whatever
    type it had, it may have been a failure); recommended evidence only warns.
    """
    reasons = [f"evidence does not verify: {item}" for item in integrity_failures or []]
    reasons += [
        f"{item.asset_uri}: evidence {item.evidence_id[:12]} {item.summary}"
        for item in summary.evidence
        if item.evidence_type_id == UNREADABLE
    ]
    warnings: list[str] = []
    # a record without a trusted signature never satisfies a check; where its type is
    # checked (or its build has no trusted provenance), it blocks, with the reason on the CR
    checked = {c.evidence_type_id for c in policy.checks if c.level is not CheckLevel.recommended}
    for odd in summary.untrusted:
        line = f"{odd.asset_uri}: {odd.evidence_type_id} {odd.evidence_id[:12]} is not trusted: "
        blocks = odd.evidence_type_id in checked or odd.evidence_type_id == UNTRUSTED_BUILD
        (reasons if blocks else warnings).append(line + odd.reason)
    by_asset: dict[str, dict[str, list[str]]] = {}
    for item in summary.evidence:
        by_asset.setdefault(item.asset_id, {}).setdefault(item.evidence_type_id, [])
        by_asset[item.asset_id][item.evidence_type_id].append(item.result.value)
    for aid, uri in sorted(summary.assets.items(), key=lambda kv: kv[1]):
        found = by_asset.get(aid, {})
        for check in policy.checks:
            results = found.get(check.evidence_type_id)
            if results is None:
                if check.level is CheckLevel.required:
                    reasons.append(f"{uri}: no {check.evidence_type_id} evidence")
                elif check.level is CheckLevel.recommended:
                    warnings.append(f"{uri}: no {check.evidence_type_id} evidence (recommended)")
                continue
            bad = [r for r in results if r != EvidenceResult.success.value]
            if bad:
                message = f"{uri}: {check.evidence_type_id} is {bad[0]}"
                (warnings if check.level is CheckLevel.recommended else reasons).append(message)
    for item in summary.evidence:
        if item.due_dates and min(item.due_dates) < today.isoformat():
            reasons.append(
                f"{item.asset_uri}: {item.evidence_type_id} has findings past due "
                f"({min(item.due_dates)})"
            )
    return Readiness(ready=not reasons, reasons=reasons, warnings=warnings)
