"""The change request's lifecycle: drafting, validated transitions, decisions and closing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from changeflow.approvals import approvals_needed, check_emergency_close, quorum_line
from changeflow.authors import authors_of
from changeflow.change_log import planned_change_log
from changeflow.delta import Delta
from changeflow.delta_origins import Origins, promotion_fields
from changeflow.errors import BadInput
from changeflow.labels import region_of_label
from changeflow.models import (
    Approval,
    ChangeLogEntry,
    ChangeRequest,
    ChangeState,
    ChangeType,
    CloseCategory,
    Evidence,
    InventoryEntry,
    Promotion,
    utcnow,
)
from changeflow.readiness import IMMUTABLE_STORAGE, Readiness
from changeflow.summary import EvidenceSummary
from changeflow.tested import TestDeployment

__all__ = [
    "TRANSITIONS",
    "ChangeEvent",
    "awaiting_approval",
    "cancel",
    "carry_on_with",
    "change_event",
    "close",
    "closing_category",
    "deploy_pipeline",
    "deployed_by",
    "deployed_regions",
    "draft_change_request",
    "note",
    "record_decision",
    "resumable",
    "transition",
    "unfiled_storage_check",
]

TRANSITIONS: dict[ChangeState, set[ChangeState]] = {
    ChangeState.new: {ChangeState.assess, ChangeState.cancelled},
    ChangeState.assess: {ChangeState.authorize, ChangeState.cancelled},
    ChangeState.authorize: {ChangeState.scheduled, ChangeState.cancelled},
    ChangeState.scheduled: {ChangeState.implement, ChangeState.cancelled},
    ChangeState.implement: {ChangeState.review},
    ChangeState.review: {ChangeState.closed},
    ChangeState.closed: set(),
    ChangeState.cancelled: set(),
}


def transition(cr: ChangeRequest, to: ChangeState, *, by: str, why: str) -> ChangeRequest:
    """Move a CR to state `to`, recording who, when and why.

    Raises:
        BadInput: for a transition the lifecycle does not allow.
    """
    if to not in TRANSITIONS[cr.state]:
        raise BadInput(f"{cr.id} is {cr.state.value}: it cannot move to {to.value}")
    entry = {"from": cr.state.value, "to": to.value, "by": by, "date": utcnow().isoformat()}
    return cr.model_copy(update={"state": to, "history": [*cr.history, {**entry, "why": why}]})


def note(cr: ChangeRequest, event: str) -> ChangeRequest:
    """Record something that happened to a CR without moving it (a wait, a late decision)."""
    return cr.model_copy(
        update={"history": [*cr.history, {"event": event, "date": utcnow().isoformat()}]}
    )


def cancel(cr: ChangeRequest, *, by: str, why: str, notes: str = "") -> ChangeRequest:
    """Cancel a CR that did not go ahead (rejected, or refused outside its change window).

    Raises:
        BadInput: when the CR is past the point where it can be cancelled.
    """
    cancelled = transition(cr, ChangeState.cancelled, by=by, why=why)
    return cancelled.model_copy(
        update={"close_category": CloseCategory.cancelled, "close_notes": notes}
    )


def draft_change_request(
    cr_id: str,
    *,
    environment: str,
    region: str,
    deployment_run_id: str,
    delta: Delta,
    previous: dict[str, InventoryEntry],
    inventory_commit: str,
    previous_inventory_commit: str | None,
    promotion: Promotion | None = None,
    summary: EvidenceSummary,
    summary_url: str,
    summary_sha256: str,
    readiness: Readiness,
    emergency: bool,
    now: datetime | None = None,
    duration: timedelta = timedelta(minutes=30),
    test_deployments: list[TestDeployment] | None = None,
    links: dict[str, str] | None = None,
    origins: Origins | None = None,
    change_log: list[ChangeLogEntry] | None = None,
) -> ChangeRequest:
    """Assemble a new CR from the facts of one deployment, filed in state `assess`.

    `test_deployments`: where the delta's artifacts were deployed before (`changeflow.gate`);
    `links`: evidence id -> where its report (or its run) is, for each failing record's line.
    `origins`: the promotions and direct writes that brought the delta (`promotion`, the one
    promotion to take the fields of when they are not known); `change_log`: the applications'
    commits as read (`changeflow.change_log`; the ranges alone when None). An emergency
    promotion (`promote --emergency`) files an emergency change by itself.
    """
    start = now or utcnow()
    if change_log is None:  # not read: the ranges alone
        change_log = planned_change_log(delta, previous)
    # the promotions that brought the delta (`changeflow.delta_origins`), else the one given
    origins = origins or Origins(promotions=[promotion] if promotion else [])
    failed = [
        f"{item.asset_uri}: {item.evidence_type_id} {item.result.value} "
        f"(evidence {item.evidence_id})"
        + (f": {links[item.evidence_id]}" if links and item.evidence_id in links else "")
        for item in summary.failed
    ]
    cr = ChangeRequest(
        id=cr_id,
        environment=environment,
        region=region,
        type=ChangeType.emergency if emergency or origins.emergency else ChangeType.standard,
        deployment_run_id=deployment_run_id,
        planned_start=start,
        planned_end=start + duration,
        deployment_ready=readiness.ready,
        readiness_reasons=[*readiness.reasons, *readiness.warnings],
        inventory_commit=inventory_commit,
        previous_inventory_commit=previous_inventory_commit,
        delta=delta.updated,
        deletions=delta.deleted,
        bom={name: e.sha256 for name, e in sorted(delta.entries.items())},
        change_log=change_log,
        evidence_summary_url=summary_url,
        evidence_summary_sha256=summary_sha256,
        evidence_count=len({i.evidence_id for i in summary.evidence}),
        failed_evidence=failed,
        test_deployments=test_deployments or [],
        # who wrote the delta's commits may not approve it (separation of duties)
        delta_authors=authors_of(e.author for e in delta.entries.values()),
        promotions=origins.promotions,
        arrivals=origins.arrivals,
        **promotion_fields(origins.promotions),
    )
    return transition(cr, ChangeState.assess, by="changeflow", why="filed by the deploy flow")


def record_decision(cr: ChangeRequest, approval: Approval) -> ChangeRequest:
    """Record an approval or rejection and move the CR on accordingly.

    A CR waiting in `authorize` is scheduled or cancelled; an emergency CR in `review` takes its
    retroactive decision and stays in review until it is closed.

    Raises:
        BadInput: when the CR is not waiting for a decision.
    """
    waiting = cr.state is ChangeState.authorize or (
        cr.state is ChangeState.review
        and cr.type is ChangeType.emergency
        and approvals_needed(cr) > 0
    )
    if not waiting:
        raise BadInput(f"{cr.id} is {cr.state.value}: it is not waiting for approval")
    cr = cr.model_copy(update={"approvals": [*cr.approvals, approval]})
    why = f"{approval.decision} by {approval.by}" + (
        f": {approval.comment}" if approval.comment else ""
    )
    if cr.state is ChangeState.review:
        return note(cr, why)
    # issue 13: an approval short of the quorum is recorded; the CR waits for the next one
    if approval.decision == "approved" and approvals_needed(cr):
        return note(cr, f"{why}; {quorum_line(cr)}")
    if approval.decision == "approved":
        return transition(cr, ChangeState.scheduled, by=approval.by, why=why)
    return cancel(cr, by=approval.by, why=why)


class ChangeEvent(NamedTuple):
    """An event a change to a CR calls for: its name below `changeflow.`, and its payload."""

    name: str
    payload: dict[str, Any]


def change_event(before: ChangeRequest | None, after: ChangeRequest) -> ChangeEvent | None:
    """The event that announces a change to a CR, or None for a change nobody reacts to.

    A new CR is `created`; a new decision is `approved` or `rejected` (by whom, and whether
    automatically); an emergency deployed ahead of its approvals is `emergency_review`; a CR
    that stops being open otherwise is `closed`. Moving along the lifecycle, recording a wait
    or the deployment's evidence announces nothing.
    """
    if before is None:
        return ChangeEvent("change_request.created", {})
    if len(after.approvals) > len(before.approvals):
        decided = after.approvals[-1]
        payload: dict[str, Any] = {"by": decided.by}
        if decided.automatic:
            payload["automatic"] = True
        return ChangeEvent(f"change_request.{decided.decision}", payload)
    entered_review = after.state is ChangeState.review and before.state is not after.state
    if after.type is ChangeType.emergency and entered_review:
        return ChangeEvent("change_request.emergency_review", {"needed": approvals_needed(after)})
    if before.is_open and not after.is_open:
        return ChangeEvent("change_request.closed", {})
    return None


def close(cr: ChangeRequest, category: CloseCategory, *, by: str, notes: str = "") -> ChangeRequest:
    """Close a CR with its outcome, passing through `review` as the lifecycle demands.

    Raises:
        BadInput: when the CR is not implemented yet or already closed, or is an emergency
            closing successful before its retroactive approvals meet the quorum.
    """
    check_emergency_close(cr, category)
    if cr.state is ChangeState.implement:
        cr = transition(cr, ChangeState.review, by=by, why="deployment finished")
    if cr.state is not ChangeState.review:
        raise BadInput(f"{cr.id} is {cr.state.value}: only an implemented change can be closed")
    closed = transition(cr, ChangeState.closed, by=by, why=f"closed {category.value}")
    return closed.model_copy(update={"close_category": category, "close_notes": notes})


def closing_category(cr: ChangeRequest, acceptance_passed: bool) -> CloseCategory:
    """How a deployment that went ahead closes.

    `successful` only when its evidence was ready and its acceptance tests passed; a deployment
    that went ahead on a person's approval, or whose acceptance failed, closes with issues.
    """
    if cr.deployment_ready and acceptance_passed:
        return CloseCategory.successful
    return CloseCategory.successful_issues


_UNFINISHED = (
    ChangeState.assess,
    ChangeState.authorize,
    ChangeState.scheduled,
    ChangeState.implement,
)


def resumable(
    crs: list[ChangeRequest],
    environment: str,
    region: str,
    head: str,
    previous: str | None,
    run_id: str | None = None,
) -> ChangeRequest | None:
    """The unfinished CR a deploy run of a region carries on with.

    First the one this very run (`run_id`) left waiting, as a run rescheduled to its change
    window is run again, whatever the environment's branch holds by then. Else the one for
    deploying `head`, filed against the region's label at `previous`, or with the label
    already moved to `head` (a run got past the deployment but not to closing the CR).
    """
    placed = [
        cr
        for cr in crs
        if (cr.environment, cr.region) == (environment, region) and cr.state in _UNFINISHED
    ]
    mine = [cr for cr in placed if run_id and cr.flow_run_id == run_id]
    same = [
        cr
        for cr in placed
        if cr.inventory_commit == head and previous in (cr.previous_inventory_commit, head)
    ]
    found = mine or same
    return found[-1] if found else None


def deploy_pipeline(environment: str, region: str) -> str:
    """The pipeline id under which a region's deploy runs record their own evidence."""
    return f"changeflow-deploy/{environment}/{region}"


def unfiled_storage_check(
    records: Iterable[Evidence],
    crs: list[ChangeRequest],
    environment: str,
    region: str,
    asset_ids: Iterable[str],
) -> Evidence | None:
    """The storage check a crashed deploy run of the same delta recorded but filed no CR with.

    It was recorded by the region's deploy pipeline about exactly these assets, after every CR
    filed for the region (a run files its CR after its check). A rerun files it instead of
    checking again, so the crash leaves no second record.
    """
    pipeline = deploy_pipeline(environment, region)
    last_filed = max(
        (cr.created for cr in crs if (cr.environment, cr.region) == (environment, region)),
        default=None,
    )
    wanted = set(asset_ids)
    unfiled = [
        r
        for r in records
        if r.evidence_type_id == IMMUTABLE_STORAGE
        and r.origin.pipeline_id == pipeline
        and set(r.assets) == wanted
        and (last_filed is None or r.date > last_filed)
    ]
    return max(unfiled, key=lambda r: (r.date, r.id), default=None)


def awaiting_approval(
    crs: list[ChangeRequest], environment: str, region: str
) -> ChangeRequest | None:
    """The CR of a region whose deploy run is paused for a person's decision, if any."""
    return next(
        (
            cr
            for cr in crs
            if (cr.environment, cr.region) == (environment, region)
            and cr.state is ChangeState.authorize
            and cr.flow_run_id
        ),
        None,
    )


def carry_on_with(cr: ChangeRequest, environment: str, region: str) -> ChangeRequest:
    """Check a CR named on the command line is one a deploy to this region can carry on with.

    Raises:
        BadInput: when it is for another place or has nothing left to deploy.
    """
    if (cr.environment, cr.region) != (environment, region):
        raise BadInput(f"{cr.id} is for {cr.environment}/{cr.region}, not {environment}/{region}")
    if cr.state not in _UNFINISHED:
        raise BadInput(f"{cr.id} is {cr.state.value}: there is nothing left to deploy")
    return cr


def deployed_regions(labels: dict[str, str], environment: str) -> dict[str, str]:
    """Region -> deployed inventory commit, from the `<region>_<env>_latest` labels."""
    return {
        region: commit
        for name, commit in labels.items()
        if (region := region_of_label(name, environment)) is not None
    }


def deployed_by(
    crs: list[ChangeRequest], environment: str, region: str, commit: str
) -> ChangeRequest | None:
    """The latest CR that deployed `commit` to a region (closed, or an emergency in review)."""
    done = [
        cr
        for cr in crs
        if (cr.environment, cr.region, cr.inventory_commit) == (environment, region, commit)
        and cr.state in (ChangeState.closed, ChangeState.review)
    ]
    return max(done, key=lambda cr: cr.id) if done else None
