"""The promotion gate: only artifacts deployed and tested in the source environment move on.

An entry is *tested* in a region when a CR of the source environment deployed its exact bytes
(the CR's bill of materials names the entry at the same sha256), closed `successful`, and none
of its acceptance evidence failed. Promoting takes an entry tested in every region of the source
environment, or in any one when the target's `promotion_gate` is `any_region`. `master` is where
CI records builds: nothing is deployed from it, so nothing promoted from it is gated.

The same records answer, at deploy time, where an artifact was deployed before
(`deployments_of`) and whether a failed acceptance there blocks the CR (`earlier_failures`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from changeflow.models import (
    ChangeRequest,
    ChangeState,
    CloseCategory,
    EvidenceResult,
    InventoryEntry,
)
from changeflow.readiness import Readiness
from changeflow.tested import TestDeployment

__all__ = [
    "UNGATED_SOURCE",
    "GateDecision",
    "acceptance_ids",
    "deployments_of",
    "earlier_failures",
    "gate_promotion",
    "judge_earlier_acceptance",
]

UNGATED_SOURCE = "master"
"""Where CI records builds: promoting from it is not gated (nothing is deployed from it)."""

GateMode = Literal["every_region", "any_region"]
# a deployment has happened once its CR is closed, or is an emergency waiting in review
_DEPLOYED_STATES = (ChangeState.closed, ChangeState.review)
_NOT_DEPLOYED = (CloseCategory.unsuccessful, CloseCategory.cancelled)


def acceptance_ids(crs: Iterable[ChangeRequest], bom: dict[str, str]) -> list[str]:
    """The acceptance evidence ids of every CR that deployed one of `bom`'s name -> sha256."""
    return sorted(
        {
            evidence_id
            for cr in crs
            if any(cr.bom.get(name) == sha for name, sha in bom.items())
            for evidence_id in cr.acceptance_evidence
        }
    )


def _acceptance(cr: ChangeRequest, results: dict[str, EvidenceResult]) -> str:
    if not cr.acceptance_evidence:
        return "none"
    # a record that could not be read may have been a failure: it counts as one
    ok = all(results.get(i) is EvidenceResult.success for i in cr.acceptance_evidence)
    return "passed" if ok else "failed"


def deployments_of(
    crs: Iterable[ChangeRequest],
    entries: dict[str, str],
    results: dict[str, EvidenceResult],
    *,
    exclude_environment: str | None = None,
) -> list[TestDeployment]:
    """Every deployment of each entry's bytes (`entries`: name -> sha256), oldest CR first.

    Args:
        crs: CRs of change management: at least those that deployed one of the sha256s
            (`ChangeManagement.deployments`); a CR that names none of them counts for nothing.
        entries: the entries asked about, at the sha256 they have now.
        results: acceptance evidence id -> result (ids missing count as failed).
        exclude_environment: leave out the deployments to this environment (the one a CR is
            being filed for).
    """
    found = [
        TestDeployment(
            entry=name,
            sha256=sha,
            environment=cr.environment,
            region=cr.region,
            change_request=cr.id,
            outcome=cr.close_category.value if cr.close_category else cr.state.value,
            acceptance=_acceptance(cr, results),
        )
        for cr in sorted(crs, key=lambda c: c.id)
        if cr.state in _DEPLOYED_STATES
        and cr.close_category not in _NOT_DEPLOYED
        and cr.environment != exclude_environment
        for name, sha in sorted(entries.items())
        if cr.bom.get(name) == sha
    ]
    return found


def _tested(d: TestDeployment) -> bool:
    return d.outcome == CloseCategory.successful.value and d.acceptance != "failed"


@dataclass(frozen=True)
class GateDecision:
    """Which entries may be promoted, and why each other one may not."""

    eligible: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per refused entry: its name and why."""
        return [f"{name}: {why}" for name, why in sorted(self.refused.items())]


def _why_not(
    name: str, deployed: list[TestDeployment], source: str, regions: list[str], mode: GateMode
) -> str | None:
    """Why entry `name` may not leave `source` (None: it may)."""
    here = [d for d in deployed if d.entry == name and d.environment == source]
    if not here:
        return f"never deployed to {source}"
    tested = sorted({d.region for d in here if _tested(d)} & set(regions))
    if tested and (mode == "any_region" or len(tested) == len(regions)):
        return None
    if failed := [d for d in here if d.acceptance == "failed"]:
        last = failed[-1]
        return (
            f"deployed to {source}/{last.region} under {last.change_request} but acceptance failed"
        )
    if tested:
        missing = ", ".join(r for r in regions if r not in tested)
        return (
            f"deployed in {len(tested)} of {len(regions)} regions of {source} "
            f"({', '.join(tested)}); not in {missing}"
        )
    last = here[-1]
    return (
        f"deployed to {source}/{last.region} under {last.change_request}, closed "
        f"{last.outcome}, not successful"
    )


def gate_promotion(
    candidates: dict[str, InventoryEntry],
    *,
    source: str,
    regions: list[str],
    mode: GateMode,
    crs: Iterable[ChangeRequest],
    results: dict[str, EvidenceResult],
) -> GateDecision:
    """Decide which of the entries a promotion would carry were deployed and tested in `source`.

    Args:
        candidates: name -> entry at the source, of each entry the promotion would carry.
        source: the environment promoted from (`master` is not gated).
        regions: the source environment's regions.
        mode: the target's `promotion_gate`.
        crs: at least the CRs that deployed one of the candidates' sha256s.
        results: acceptance evidence id -> result.
    """
    if source == UNGATED_SOURCE:
        return GateDecision(eligible=sorted(candidates))
    bom = {name: e.sha256 for name, e in candidates.items()}
    deployed = deployments_of(crs, bom, results)
    refused = {
        name: why
        for name in sorted(candidates)
        if (why := _why_not(name, deployed, source, sorted(regions), mode)) is not None
    }
    return GateDecision(
        eligible=[n for n in sorted(candidates) if n not in refused], refused=refused
    )


def earlier_failures(deployments: list[TestDeployment]) -> list[str]:
    """One reason per earlier deployment whose acceptance tests failed on the same bytes."""
    return [
        f"{d.entry}: acceptance failed in {d.environment}/{d.region} under {d.change_request}"
        for d in deployments
        if d.acceptance == "failed"
    ]


def judge_earlier_acceptance(
    readiness: Readiness, deployments: list[TestDeployment], level: Literal["block", "warn"]
) -> Readiness:
    """`readiness` with the earlier acceptance failures blocking it (or only warning)."""
    failures = earlier_failures(deployments)
    if level == "block":
        return readiness.blocked_by(failures)
    return readiness.model_copy(update={"warnings": [*readiness.warnings, *failures]})
