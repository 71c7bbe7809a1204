"""The deploy flow: one change request per environment and region, built from the evidence."""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import date
from functools import partial
from pathlib import Path

from prefect import flow, get_run_logger, pause_flow_run
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import BaseModel

from blocks import config
from blocks.change_management import GitChangeManagement
from changeflow.change import close, draft_change_request, record_decision, transition
from changeflow.errors import BadInput
from changeflow.models import (
    Approval,
    Asset,
    ChangeRequest,
    ChangeState,
    CloseCategory,
    EvidenceResult,
    asset_id,
)
from changeflow.project import EnvironmentSpec, expand_command, load_environments
from changeflow.readiness import deployment_ready
from changeflow.render import render_change_request
from changeflow.reports import Thresholds
from changeflow.settings import Settings
from changeflow.summary import summarize
from flows.common import run_scope, run_url
from tasks.change import file_change_request, read_change_request, update_change_request
from tasks.deployment import prepare_deployment, run_deployment_command
from tasks.evidence import gather_evidence, record_report, store_summary
from tasks.inventory import move_labels, read_delta, read_entries

__all__ = ["ApprovalInput", "DeploymentOutcome", "deploy", "environment_spec"]


class ApprovalInput(RunInput):
    """The form a person fills in to approve or reject a change request."""

    approved: bool
    by: str
    comment: str = ""


class DeploymentOutcome(BaseModel):
    environment: str
    region: str
    change_request: str | None = None
    state: str
    close_category: str | None = None
    deployment_ready: bool = False
    evidence_count: int = 0
    message: str


def environment_spec(
    environment: str, region: str, environments_file: str | None, command: list[str] | None
) -> EnvironmentSpec:
    """The environment's deployment spec, from the environments file or the command line.

    Raises:
        BadInput: for an unknown environment or region, or when no deploy command is configured.
    """
    if environments_file:
        spec = load_environments(Path(environments_file)).get(environment, region)
    else:
        spec = EnvironmentSpec(regions=[region])
    if command:
        spec = spec.model_copy(update={"deploy": command})
    if not spec.deploy:
        raise BadInput(
            f"no deploy command configured for {environment}/{region}: "
            "set one in the environments file or pass --command"
        )
    return spec


def _artifact_key(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


@flow(name="deploy", flow_run_name="deploy-{environment}-{region}")
def deploy(
    environment: str,
    region: str,
    command: list[str] | None = None,
    force: bool = False,
    emergency: bool = False,
    environments_file: str | None = None,
    inventory_block: str | None = config.INVENTORY_BLOCK,
    locker_block: str | None = config.LOCKER_BLOCK,
    changes_block: str | None = config.CHANGES_BLOCK,
) -> DeploymentOutcome:
    """Deploy what changed in an environment's inventory to one region, under a change request.

    Args:
        environment: the environment (an inventory branch).
        region: the region to deploy to.
        command: the deploy command, overriding the environments file.
        force: deploy even when nothing changed since the last deployment.
        emergency: go ahead without approval; the CR waits in review for it afterwards.
        environments_file: path of `environments.toml` (default `CHANGEFLOW_ENVIRONMENTS`).
        inventory_block: name of a saved inventory block.
        locker_block: name of a saved evidence locker block.
        changes_block: name of a saved change-management block.
    """
    logger = get_run_logger()
    spec = environment_spec(
        environment, region, environments_file or Settings.from_env().environments_file, command
    )
    assert spec.deploy is not None
    locker = config.evidence_locker(locker_block)
    inventory = config.inventory(inventory_block)
    changes = config.change_management(changes_block)

    head = inventory.resolve(environment)
    if head is None:
        raise BadInput(f"unknown environment {environment!r}: the inventory has no such branch")
    labels = [f"{region}_{environment}_latest", f"{environment}_latest"]
    previous_commit = inventory.resolve(labels[0])
    delta = read_delta(inventory, previous_commit, head)
    if delta.is_empty and not force:
        logger.info("nothing changed in %s since the last deployment to %s", environment, region)
        return DeploymentOutcome(
            environment=environment, region=region, state="skipped", message="nothing to deploy"
        )
    previous = read_entries(inventory, previous_commit) if previous_commit else {}
    entries = read_entries(inventory, head)

    scope = run_scope("deploy")
    assets = {asset_id(e.provenance): e.provenance for e in delta.entries.values()}
    records = gather_evidence(locker, sorted(assets))
    summary = summarize(
        scope=scope, environment=environment, region=region, assets=assets, records=records
    )
    summary_url, summary_sha = store_summary(locker, summary)
    readiness = deployment_ready(summary, spec.policy, today=date.today())
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
            promotion=inventory.promotion(head),
            summary=summary,
            summary_url=summary_url,
            summary_sha256=summary_sha,
            readiness=readiness,
            emergency=emergency,
        ),
    )
    logger.info("filed %s (deployment ready: %s)", cr.id, readiness.ready)

    cr = transition(cr, ChangeState.authorize, by="changeflow", why="assessed from the evidence")
    if readiness.ready:
        approval = Approval(
            by="changeflow",
            decision="approved",
            automatic=True,
            comment="every required piece of evidence passes",
        )
        cr = update_change_request(changes, record_decision(cr, approval), "approved automatically")
    elif emergency:
        cr = transition(
            cr, ChangeState.scheduled, by="changeflow", why="emergency: approval after the fact"
        )
        cr = update_change_request(changes, cr, "emergency")
    else:
        cr = cr.model_copy(update={"flow_run_id": str(flow_run.get_id())})
        cr = update_change_request(changes, cr, "waiting for approval")
        cr = _wait_for_approval(changes, cr, spec.approval_timeout_s)
        if cr.state is not ChangeState.scheduled:
            _publish(cr)
            return _outcome(cr, "not approved: the deployment did not go ahead")

    cr = update_change_request(
        changes,
        transition(cr, ChangeState.implement, by="changeflow", why="deploying"),
        "implement",
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"changeflow-deploy-{cr.id}-"))
    try:
        context = {
            "CHANGEFLOW_ENVIRONMENT": environment,
            "CHANGEFLOW_REGION": region,
            "CHANGEFLOW_CHANGE_REQUEST": cr.id,
        }
        env = prepare_deployment(locker, workdir, delta, entries, context)
        values = {"environment": environment, "region": region, "change_request": cr.id}
        result = run_deployment_command("deploy", expand_command(spec.deploy, values), workdir, env)
        if not result.ok:
            if spec.backout:
                run_deployment_command(
                    "backout", expand_command(spec.backout, values), workdir, env
                )
            notes = f"deploy command exited {result.returncode}; tags left where they were"
            cr = close(cr, CloseCategory.unsuccessful, by="changeflow", notes=notes)
            cr = update_change_request(changes, cr, "closed unsuccessful")
            _publish(cr)
            return _outcome(cr, "the deployment failed")

        acceptance_ok, acceptance_ids = True, []
        if spec.acceptance:
            run_deployment_command(
                "acceptance", expand_command(spec.acceptance.command, values), workdir, env
            )
            report_path = workdir / spec.acceptance.report
            record, outcome = record_report(
                locker,
                report=report_path.read_bytes() if report_path.exists() else None,
                label=report_path.name,
                fmt=spec.acceptance.format,
                thresholds=Thresholds(),
                evidence_type_id="com.ibm.acceptance_tests",
                tool=spec.acceptance.tool,
                scope=scope,
                assets=[Asset.for_uri(uri) for uri in assets.values()],
                pipeline_id="changeflow-deploy",
                pipeline_run_url=run_url(),
            )
            acceptance_ok = outcome.result is EvidenceResult.success
            acceptance_ids = [record.id]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    move_labels(inventory, labels, head)
    cr = cr.model_copy(update={"acceptance_evidence": acceptance_ids})
    if emergency and not readiness.ready:
        cr = transition(
            cr, ChangeState.review, by="changeflow", why="emergency deployed: waiting for approval"
        )
        cr = update_change_request(changes, cr, "emergency deployed")
    else:
        clean = readiness.ready and acceptance_ok and cr.decision is not None
        category = (
            CloseCategory.successful
            if clean and cr.decision and cr.decision.automatic
            else CloseCategory.successful_issues
        )
        notes = "deployed; acceptance tests " + ("passed" if acceptance_ok else "failed")
        cr = update_change_request(
            changes, close(cr, category, by="changeflow", notes=notes), f"closed {category.value}"
        )
    _publish(cr)
    return _outcome(cr, "deployed")


def _wait_for_approval(
    changes: GitChangeManagement, cr: ChangeRequest, timeout_s: int
) -> ChangeRequest:
    """Pause until a person decides, in the UI or with `changeflow cr approve|reject`."""
    logger = get_run_logger()
    _publish(cr)
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
            return update_change_request(changes, record_decision(current, timed_out), "timed out")
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
    return current


def _publish(cr: ChangeRequest) -> None:
    create_markdown_artifact(
        key=_artifact_key("change-request", cr.environment, cr.region),
        markdown=render_change_request(cr),
        description=f"{cr.id} ({cr.state.value})",
    )


def _outcome(cr: ChangeRequest, message: str) -> DeploymentOutcome:
    return DeploymentOutcome(
        environment=cr.environment,
        region=cr.region,
        change_request=cr.id,
        state=cr.state.value,
        close_category=cr.close_category.value if cr.close_category else None,
        deployment_ready=cr.deployment_ready,
        evidence_count=cr.evidence_count,
        message=message,
    )
