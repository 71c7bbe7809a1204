"""The steps of the deploy flow: file the CR, authorize it, wait for a person, deploy, close.

Each step takes the CR in one state and returns it in the next, written to the change-management
repo, so the flow can carry on from whichever state a crashed run left behind.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

from prefect import get_run_logger, pause_flow_run
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.runtime import flow_run

from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.inventory import GitInventory
from changeflow.change import (
    close,
    closing_category,
    deploy_pipeline,
    draft_change_request,
    record_decision,
    transition,
    unfiled_storage_check,
)
from changeflow.labels import deployed_label, environment_label
from changeflow.models import (
    Approval,
    Asset,
    ChangeRequest,
    ChangeState,
    ChangeType,
    CloseCategory,
    Evidence,
    EvidenceResult,
    asset_id,
)
from changeflow.ports import IncidentStore
from changeflow.project import EnvironmentSpec, expand_command
from changeflow.readiness import deployment_ready
from changeflow.render import render_change_request
from changeflow.reports import Thresholds
from changeflow.requests import DeploymentRequest
from changeflow.summary import summarize
from changeflow.windows import Calendar, decide_window
from flows.common import run_scope, run_url
from flows.ui import (
    emit_change_event,
    emit_evidence_failed,
    publish_change_request,
    publish_delta,
    publish_summary,
)
from tasks.change import file_change_request, read_change_request, update_change_request
from tasks.deployment import prepare_deployment, run_deployment_command
from tasks.evidence import (
    gather_evidence,
    read_evidence,
    record_report,
    record_storage_check,
    store_summary,
)
from tasks.incidents import overdue_incidents
from tasks.inventory import move_labels, read_delta, read_entries, read_promotion, resolve_refs

__all__ = [
    "ApprovalInput",
    "authorize",
    "file_change",
    "implement",
    "start_in_window",
    "wait_for_approval",
]


class ApprovalInput(RunInput):
    """The form a person fills in to approve or reject a change request."""

    approved: bool
    by: str
    comment: str = ""


def file_change(
    inventory: GitInventory,
    locker: EvidenceLocker,
    changes: GitChangeManagement,
    spec: EnvironmentSpec,
    request: DeploymentRequest,
    head: str,
    previous_commit: str | None,
    filed: list[ChangeRequest],
    incidents: IncidentStore,
) -> ChangeRequest | None:
    """Compute the delta, summarize its evidence and file a CR; None when nothing changed.

    `filed` are the CRs filed so far: a storage check recorded after the region's last one
    was recorded by a crashed run of this delta, and is filed instead of a second check.
    """
    logger = get_run_logger()
    environment, region = request.environment, request.region
    delta = read_delta(inventory, previous_commit, head)
    if delta.is_empty and not request.force:
        logger.info("nothing changed in %s since the last deployment to %s", environment, region)
        return None
    previous = read_entries(inventory, previous_commit) if previous_commit else {}
    publish_delta(delta, environment, region)

    scope = run_scope("deploy")
    assets = {asset_id(e.provenance): e.provenance for e in delta.entries.values()}
    records = gather_evidence(locker, sorted(assets))
    # the run's own evidence: is the locker keeping all of this immutable?
    own: list[Evidence] = []
    if assets:
        checked = unfiled_storage_check(records, filed, environment, region, assets)
        own = [
            checked
            or record_storage_check(
                locker,
                scope,
                deploy_pipeline(environment, region),
                [Asset.for_uri(u) for u in assets.values()],
            )
        ]
    summary = summarize(
        scope=scope,
        environment=environment,
        region=region,
        assets=assets,
        records=records,
        run_evidence=own,
    )
    summary_url, summary_sha = store_summary(locker, summary)
    publish_summary(summary, summary_url, summary_sha)
    today = date.today()
    applications = sorted({e.repository_url for e in delta.entries.values()})
    late = overdue_incidents(incidents, applications, today)
    readiness = deployment_ready(summary, spec.policy, today=today).blocked_by(
        [f"overdue: {i.line}" for i in late]
    )
    cr = file_change_request(
        changes,
        partial(
            draft_change_request,
            environment=environment,
            region=region,
            deployment_run_id=scope,
            delta=delta,
            previous=previous,
            inventory_commit=head,
            previous_inventory_commit=previous_commit,
            promotion=read_promotion(inventory, head),
            summary=summary,
            summary_url=summary_url,
            summary_sha256=summary_sha,
            readiness=readiness,
            emergency=request.emergency,
        ),
    )
    logger.info("filed %s (deployment ready: %s)", cr.id, readiness.ready)
    emit_change_event("change_request.created", cr)
    if summary.failed:
        emit_evidence_failed(summary, cr)
    return cr


def authorize(changes: GitChangeManagement, cr: ChangeRequest, emergency: bool) -> ChangeRequest:
    """Approve a ready CR, let an emergency through, or leave it waiting for a person."""
    cr = transition(cr, ChangeState.authorize, by="changeflow", why="assessed from the evidence")
    if cr.deployment_ready:
        approval = Approval(
            by="changeflow",
            decision="approved",
            automatic=True,
            comment="every required piece of evidence passes",
        )
        cr = update_change_request(changes, record_decision(cr, approval), "approved automatically")
        emit_change_event("change_request.approved", cr, by="changeflow", automatic=True)
        return cr
    if emergency:
        cr = transition(
            cr, ChangeState.scheduled, by="changeflow", why="emergency: approval after the fact"
        )
        return update_change_request(changes, cr, "emergency")
    cr = cr.model_copy(update={"flow_run_id": str(flow_run.get_id())})
    return update_change_request(changes, cr, "waiting for approval")


def implement(
    inventory: GitInventory,
    locker: EvidenceLocker,
    changes: GitChangeManagement,
    spec: EnvironmentSpec,
    cr: ChangeRequest,
) -> ChangeRequest:
    """Deploy (unless a crashed run already did), move the labels and close the CR.

    The labels move only after the acceptance evidence is on the CR, so a rerun that finds the
    region's label at the CR's commit knows the deployment happened and only closes it.
    """
    [label] = resolve_refs(inventory, [deployed_label(cr.environment, cr.region)])
    deployed = label == cr.inventory_commit
    if not deployed:
        cr = run_deployment(inventory, locker, changes, spec, cr)
        if not cr.is_open:
            return cr
        # what is deployed where, and which CR and run put it there
        labels = [
            deployed_label(cr.environment, cr.region),
            environment_label(cr.environment),
            cr.id,
        ]
        move_labels(inventory, [*labels, run_scope("deploy")], cr.inventory_commit)
    acceptance_ok = all(
        record.result is EvidenceResult.success
        for record in read_evidence(locker, cr.acceptance_evidence)
    )
    if cr.type is ChangeType.emergency and not cr.deployment_ready:
        cr = transition(
            cr, ChangeState.review, by="changeflow", why="emergency deployed: waiting for approval"
        )
        cr = update_change_request(changes, cr, "emergency deployed")
    else:
        category = closing_category(cr, acceptance_ok)
        notes = "deployed; acceptance tests " + ("passed" if acceptance_ok else "failed")
        cr = update_change_request(
            changes, close(cr, category, by="changeflow", notes=notes), f"closed {category.value}"
        )
        emit_change_event("change_request.closed", cr)
    emit_change_event("deployment.finished", cr, ok=True, acceptance_passed=acceptance_ok)
    return cr


def start_in_window(
    changes: GitChangeManagement, spec: EnvironmentSpec, cr: ChangeRequest
) -> ChangeRequest:
    """Move a scheduled CR to implement inside its change window: wait for it, or refuse."""
    logger = get_run_logger()
    calendar = Calendar(
        environments={cr.environment: spec.change_windows} if spec.change_windows else {}
    )
    emergency = cr.type is ChangeType.emergency
    while True:
        decision = decide_window(calendar, cr.environment, datetime.now(UTC), emergency)
        if decision.action != "wait" or decision.wait_until is None:
            break
        logger.info("%s: %s", cr.id, decision.reason)
        # decide again at least every minute: a freeze declared meanwhile must hold
        remaining = (decision.wait_until - datetime.now(UTC)).total_seconds()
        time.sleep(max(1.0, min(60.0, remaining)))
    if not decision.allowed:
        cancelled = transition(cr, ChangeState.cancelled, by="changeflow", why=decision.reason)
        cancelled = cancelled.model_copy(
            update={"close_category": CloseCategory.cancelled, "close_notes": decision.reason}
        )
        cr = update_change_request(changes, cancelled, "refused: outside its change window")
        emit_change_event("change_request.closed", cr)
        return cr
    why = f"deploying ({decision.reason})" if decision.exempt else "deploying"
    return update_change_request(
        changes, transition(cr, ChangeState.implement, by="changeflow", why=why), "implement"
    )


def run_deployment(
    inventory: GitInventory,
    locker: EvidenceLocker,
    changes: GitChangeManagement,
    spec: EnvironmentSpec,
    cr: ChangeRequest,
) -> ChangeRequest:
    """Run the deploy command and the acceptance tests; record the outcome on the CR."""
    assert spec.deploy is not None
    delta = read_delta(inventory, cr.previous_inventory_commit, cr.inventory_commit)
    entries = read_entries(inventory, cr.inventory_commit)
    scope = run_scope("deploy")
    workdir = Path(tempfile.mkdtemp(prefix=f"changeflow-deploy-{cr.id}-"))
    values = {"environment": cr.environment, "region": cr.region, "change_request": cr.id}
    try:
        context = {
            "CHANGEFLOW_ENVIRONMENT": cr.environment,
            "CHANGEFLOW_REGION": cr.region,
            "CHANGEFLOW_CHANGE_REQUEST": cr.id,
        }
        env = prepare_deployment(locker, workdir, delta, entries, context)
        result = run_deployment_command("deploy", expand_command(spec.deploy, values), workdir, env)
        if not result.ok:
            if spec.backout:
                run_deployment_command(
                    "backout", expand_command(spec.backout, values), workdir, env
                )
            notes = f"deploy command exited {result.returncode}; labels left where they were"
            cr = close(cr, CloseCategory.unsuccessful, by="changeflow", notes=notes)
            cr = update_change_request(changes, cr, "closed unsuccessful")
            emit_change_event("change_request.closed", cr)
            emit_change_event("deployment.finished", cr, ok=False)
            return cr
        acceptance: list[str] = []
        if spec.acceptance:
            run_deployment_command(
                "acceptance", expand_command(spec.acceptance.command, values), workdir, env
            )
            report_path = workdir / spec.acceptance.report
            record, _ = record_report(
                locker,
                report=report_path.read_bytes() if report_path.exists() else None,
                label=report_path.name,
                fmt=spec.acceptance.format,
                thresholds=Thresholds(),
                evidence_type_id="com.ibm.acceptance_tests",
                tool=spec.acceptance.tool,
                scope=scope,
                assets=[Asset.for_uri(e.provenance) for e in delta.entries.values()],
                pipeline_id="changeflow-deploy",
                pipeline_run_url=run_url(),
            )
            acceptance = [record.id]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return update_change_request(
        changes, cr.model_copy(update={"acceptance_evidence": acceptance}), "deployed"
    )


def wait_for_approval(
    changes: GitChangeManagement, cr: ChangeRequest, timeout_s: int
) -> ChangeRequest:
    """Pause until a person decides, in the UI or with `changeflow cr approve|reject`."""
    logger = get_run_logger()
    run_id = str(flow_run.get_id())
    if cr.flow_run_id != run_id:
        # a rerun waits in place of the run that filed the CR
        cr = update_change_request(
            changes, cr.model_copy(update={"flow_run_id": run_id}), "waiting for approval"
        )
    publish_change_request(cr, changes.link(cr))
    logger.warning(
        "%s is not ready (%s); waiting for approval: changeflow cr approve %s --by NAME",
        cr.id,
        "; ".join(cr.readiness_reasons[:3]),
        cr.id,
    )
    try:
        decision = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(
                description=render_change_request(cr), approved=True, by=""
            ),
            timeout=timeout_s,
            poll_interval=2,
        )
    except FlowPauseTimeout:
        current = read_change_request(changes, cr.id)
        if current.state is ChangeState.authorize:
            timed_out = Approval(by="changeflow", decision="rejected", comment="approval timed out")
            current = update_change_request(
                changes, record_decision(current, timed_out), "timed out"
            )
            emit_change_event("change_request.rejected", current, by="changeflow")
        return current
    current = read_change_request(changes, cr.id)
    if current.state is ChangeState.authorize:
        # decided in the UI: the CLI records its own decisions before it resumes the run
        approval = Approval(
            by=decision.by or "prefect-ui",
            decision="approved" if decision.approved else "rejected",
            comment=decision.comment,
        )
        current = update_change_request(
            changes, record_decision(current, approval), approval.decision
        )
    decided = current.decision
    if decided is not None:
        emit_change_event(f"change_request.{decided.decision}", current, by=decided.by)
    return current
