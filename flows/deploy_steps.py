"""The steps of the deploy flow: open the deployment, file its CR, authorize it, deploy, close.

Each step takes the deployment and its CR in one state and returns the CR in the next, written
to change management by `advance`, so the flow can carry on from whichever state a crashed run
left behind, and every change is written and announced the same way.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path

from prefect import get_run_logger
from prefect.runtime import flow_run

from blocks.secrets import check_secrets
from blocks.stores import open_stores
from changeflow.change import (
    close,
    closing_category,
    deploy_pipeline,
    draft_change_request,
    record_decision,
    transition,
    unfiled_storage_check,
)
from changeflow.deploying import (
    IN_DOUBT,
    DeployStatus,
    deploy_finished,
    deploy_started,
    deploy_status,
)
from changeflow.errors import BadInput, NotReady
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
from changeflow.ports import Stores
from changeflow.project import EnvironmentSpec, expand_command
from changeflow.reports import Thresholds
from changeflow.requests import (
    DeploymentConfig,
    DeploymentRequest,
    RecordStores,
    deployment_config,
)
from changeflow.revisions import revision
from changeflow.summary import summarize
from flows.attest import attest_decision, judge_found
from flows.common import run_scope, run_url
from flows.judging import evidence_links, judge_delta, note_deployment_incidents
from flows.local_deployment import local_deployment
from flows.ui import (
    announce_change,
    emit_change_event,
    emit_evidence_failed,
    publish_delta,
    publish_summary,
)
from tasks.change import file_change_request, update_change_request
from tasks.change_log import forge_of, read_change_log
from tasks.deployment import prepare_deployment, run_deployment_command
from tasks.evidence import (
    find_evidence,
    read_evidence,
    record_report,
    record_storage_check,
    store_summary,
)
from tasks.inventory import move_labels, read_delta, read_entries, read_origins, resolve_refs

__all__ = [
    "Deployment",
    "advance",
    "authorize",
    "file_change",
    "implement",
    "open_deployment",
]


@dataclass(frozen=True)
class Deployment:
    """What one deploy run works with: the request, its environment's spec, the stores, and the
    environment's head against what the region last deployed."""

    request: DeploymentRequest
    spec: EnvironmentSpec
    stores: Stores
    head: str
    previous: str | None
    config: DeploymentConfig

    def command(self, cr_id: str, template: list[str] | None = None) -> list[str]:
        """A command of this deployment (default: the deploy command) as it runs for a CR."""
        values = {"environment": self.environment, "region": self.region, "change_request": cr_id}
        return expand_command(template or self.spec.deploy or [], values)

    @property
    def environment(self) -> str:
        return self.request.environment

    @property
    def region(self) -> str:
        return self.request.region


def open_deployment(request: DeploymentRequest, names: RecordStores) -> Deployment:
    """The deploy flow's first step: check the request once, open the stores, find the head.

    The deploy command and the environments file come from the worker's configuration (or,
    in the CLI's own process, from `flows.local_deployment`), never from the request.

    Raises:
        BadInput: for a place the project does not deploy to, no deploy command, a missing
            Secret block, or an environment the inventory has no branch for; nothing is
            written before.
    """
    local = local_deployment()
    config = deployment_config(
        request, command=list(local.command), environments_file=local.environments_file
    )
    spec = config.spec
    check_secrets(spec.secrets)
    stores = open_stores(names)
    environment, region = request.environment, request.region
    head, previous = resolve_refs(
        stores.inventory, [environment, deployed_label(environment, region)]
    )
    if head is None:
        raise BadInput(f"unknown environment {environment!r}: the inventory has no such branch")
    return Deployment(
        request=request, spec=spec, stores=stores, head=head, previous=previous, config=config
    )


def advance(d: Deployment, before: ChangeRequest, after: ChangeRequest, why: str) -> ChangeRequest:
    """Write a CR's next version (a transition, a decision, a closing) and announce it.

    Every change the deploy flow makes to a CR goes through here: one write, one event.
    """
    # written only over the CR as this run read it: a person's change in between is not lost;
    # the task also checkpoints it (signed, in the locker: a rewrite of it is named)
    written = update_change_request(d.stores, after, why, revision(before))
    announce_change(before, written)
    return written


def file_change(d: Deployment, filed: list[ChangeRequest]) -> ChangeRequest | None:
    """Compute the delta, summarize its evidence and file a CR; None when nothing changed.

    `filed` are the CRs filed so far: a storage check recorded after the region's last one
    was recorded by a crashed run of this delta, and is filed instead of a second check.
    """
    logger = get_run_logger()
    stores, environment, region = d.stores, d.environment, d.region
    delta = read_delta(stores.inventory, d.previous, d.head)
    if delta.is_empty and not d.request.force:
        logger.info("nothing changed in %s since the last deployment to %s", environment, region)
        return None
    previous = read_entries(stores.inventory, d.previous) if d.previous else {}
    publish_delta(delta, environment, region)

    scope = run_scope("deploy")
    assets = {asset_id(e.provenance): e.provenance for e in delta.entries.values()}
    # a record that cannot be read is listed as failed evidence, never a crash
    found = find_evidence(stores.evidence, sorted(assets))
    # with a trust file, only what a trusted key signed counts, picked by each entry's build
    judged = judge_found(stores.evidence, found, delta.entries.values())
    found, records = judged.found, judged.counted
    # the run's own evidence: is the locker keeping all of this immutable?
    own: list[Evidence] = []
    if assets:
        checked = unfiled_storage_check(records, filed, environment, region, assets)
        own = [
            checked
            or record_storage_check(
                stores.evidence,
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
        records=found.records,
        run_evidence=own,
        unreadable=found.unreadable,
        trust=judged.with_own(stores.evidence, own),
    )
    summary_url, summary_sha = store_summary(stores.evidence, summary)
    publish_summary(summary, summary_url, summary_sha)
    # re-hashed evidence, overdue incidents, the same bytes' acceptance elsewhere
    readiness, earlier = judge_delta(
        stores, d.spec, environment, delta, previous, summary, date.today()
    )
    drafted = partial(
        draft_change_request,
        environment=environment,
        region=region,
        deployment_run_id=scope,
        delta=delta,
        previous=previous,
        inventory_commit=d.head,
        previous_inventory_commit=d.previous,
        origins=read_origins(stores.inventory, d.previous, d.head, delta),
        change_log=read_change_log(
            delta, previous, forge_of(stores.inventory), d.spec.change_log_hosts
        ),
        summary=summary,
        summary_url=summary_url,
        summary_sha256=summary_sha,
        readiness=readiness,
        emergency=d.request.emergency,
        test_deployments=earlier,
        links=evidence_links(found.records),
    )
    # the CR records what it runs under: the command, the environments file, the policy
    cr = file_change_request(
        stores,
        lambda cr_id: attest_decision(
            stores.evidence,
            d.config.recorded_on(drafted(cr_id), d.command(cr_id)),
            *(summary, summary_url, summary_sha, judged.trust),
        ),
    )
    logger.info("filed %s (deployment ready: %s)", cr.id, readiness.ready)
    announce_change(None, cr)
    if summary.failed:
        emit_evidence_failed(summary, cr)
    return cr


def authorize(d: Deployment, cr: ChangeRequest) -> ChangeRequest:
    """Approve a ready CR, let an emergency through, or leave it waiting for a person."""
    assessed = transition(
        cr, ChangeState.authorize, by="changeflow", why="assessed from the evidence"
    )
    if cr.deployment_ready:
        approval = Approval(
            by="changeflow",
            decision="approved",
            automatic=True,
            comment="every required piece of evidence passes",
        )
        return advance(d, cr, record_decision(assessed, approval), "approved automatically")
    # the deploy's flag or the promotion's (`draft_change_request`) made it an emergency
    if cr.type is ChangeType.emergency:
        let_through = transition(
            assessed,
            ChangeState.scheduled,
            by="changeflow",
            why="emergency: approval after the fact",
        )
        return advance(d, cr, let_through, "emergency")
    waiting = assessed.model_copy(update={"flow_run_id": str(flow_run.get_id())})
    return advance(d, cr, waiting, "waiting for approval")


def implement(d: Deployment, cr: ChangeRequest) -> ChangeRequest:
    """Deploy (unless a crashed run already did), move the labels and close the CR.

    The labels move only after the acceptance evidence is on the CR, so a rerun that finds the
    region's label at the CR's commit knows the deployment happened and only closes it. The
    command runs between a "started" and a "finished" record on the CR (`changeflow.deploying`):
    a rerun that finds it finished only moves the labels; one that finds it started without an
    outcome has waited for a person first (`flows.deploy_waits.wait_for_approval`).
    """
    [label] = resolve_refs(d.stores.inventory, [deployed_label(cr.environment, cr.region)])
    if label != cr.inventory_commit:
        status = deploy_status(cr)
        if status is DeployStatus.in_doubt:  # never run it again without a person's word
            raise NotReady(f"{cr.id}: {IN_DOUBT}")
        if status is DeployStatus.pending:
            cr = _run_deployment(d, cr)
        if not cr.is_open:
            return cr
        # what is deployed where, and which CR and run put it there
        labels = [
            deployed_label(cr.environment, cr.region),
            environment_label(cr.environment),
            cr.id,
        ]
        move_labels(d.stores.inventory, [*labels, run_scope("deploy")], cr.inventory_commit)
    acceptance_ok = all(
        record.result is EvidenceResult.success
        for record in read_evidence(d.stores.evidence, cr.acceptance_evidence)
    )
    if cr.type is ChangeType.emergency and not cr.deployment_ready:
        deployed = transition(
            cr, ChangeState.review, by="changeflow", why="emergency deployed: waiting for approval"
        )
        cr = advance(d, cr, deployed, "emergency deployed")
    else:
        category = closing_category(cr, acceptance_ok)
        notes = "deployed; acceptance tests " + ("passed" if acceptance_ok else "failed")
        closed = close(cr, category, by="changeflow", notes=notes)
        cr = advance(d, cr, closed, f"closed {category.value}")
    emit_change_event("deployment.finished", cr, ok=True, acceptance_passed=acceptance_ok)
    return cr


def _run_deployment(d: Deployment, cr: ChangeRequest) -> ChangeRequest:
    """Run the deploy command and the acceptance tests; record the outcome on the CR."""
    spec, inventory, evidence = d.spec, d.stores.inventory, d.stores.evidence
    if spec.deploy is None:  # deployment_spec refuses a request without a command
        raise BadInput(f"no deploy command configured for {cr.environment}/{cr.region}")
    delta = read_delta(inventory, cr.previous_inventory_commit, cr.inventory_commit)
    entries = read_entries(inventory, cr.inventory_commit)
    workdir = Path(tempfile.mkdtemp(prefix=f"changeflow-deploy-{cr.id}-"))
    values = {"environment": cr.environment, "region": cr.region, "change_request": cr.id}
    try:
        context = {
            "CHANGEFLOW_ENVIRONMENT": cr.environment,
            "CHANGEFLOW_REGION": cr.region,
            "CHANGEFLOW_CHANGE_REQUEST": cr.id,
        }
        env = prepare_deployment(evidence, workdir, delta, entries, context)
        argv = expand_command(spec.deploy, values)
        # what else the environment hands its commands: named worker variables, Secret blocks
        given = partial(run_deployment_command, pass_env=spec.pass_env, secrets=spec.secrets)
        # recorded before the command runs: a rerun that finds no outcome after it asks a person
        cr = advance(d, cr, deploy_started(_configured(d, cr, argv)), "deploying")
        result = given("deploy", argv, workdir, env)
        if not result.ok:
            if spec.backout:
                given("backout", expand_command(spec.backout, values), workdir, env)
            notes = f"deploy command exited {result.returncode}; labels left where they were"
            ended = deploy_finished(cr, result.returncode)
            failed = close(ended, CloseCategory.unsuccessful, by="changeflow", notes=notes)
            cr = advance(d, cr, failed, "closed unsuccessful")
            note_deployment_incidents(d.stores, spec, cr, delta, deployed=False, acceptance=None)
            emit_change_event("deployment.finished", cr, ok=False)
            return cr
        acceptance: list[str] = []
        record = None
        if spec.acceptance:
            given("acceptance", expand_command(spec.acceptance.command, values), workdir, env)
            report_path = workdir / spec.acceptance.report
            record, _ = record_report(
                evidence,
                report=report_path.read_bytes() if report_path.exists() else None,
                label=report_path.name,
                fmt=spec.acceptance.format,
                thresholds=Thresholds(),
                evidence_type_id="com.ibm.acceptance_tests",
                tool=spec.acceptance.tool,
                scope=run_scope("deploy"),
                assets=[Asset.for_uri(e.provenance) for e in delta.entries.values()],
                pipeline_id="changeflow-deploy",
                pipeline_run_url=run_url(),
                role="deploy",
            )
            acceptance = [record.id]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    note_deployment_incidents(d.stores, spec, cr, delta, deployed=True, acceptance=record)
    # the outcome, with the acceptance evidence: a rerun from here on only moves the labels
    deployed = deploy_finished(cr, 0).model_copy(update={"acceptance_evidence": acceptance})
    return advance(d, cr, deployed, "deployed")


def _configured(d: Deployment, cr: ChangeRequest, argv: list[str]) -> ChangeRequest:
    """The CR naming the command this run executes and the environments file it read.

    They are the worker's configuration when the command runs, which may have changed since
    the CR was filed (an approval came in after a worker's update, say): the CR never names a
    command other than the one that ran. The policy stays the one that judged the CR.
    """
    return cr.model_copy(
        update={"deploy_command": argv, "environments_sha256": d.config.environments_sha256}
    )
