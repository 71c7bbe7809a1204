"""The deploy flow: one change request per environment and region, built from the evidence."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel

from blocks import stores as config
from changeflow.change import carry_on_with, resumable
from changeflow.errors import BadInput
from changeflow.labels import deployed_label
from changeflow.models import ChangeRequest, ChangeState, CloseCategory
from changeflow.requests import DEFAULT_STORES, DeploymentRequest, RecordStores, deployment_spec
from flows.deploy_steps import (
    authorize,
    file_change,
    implement,
    start_in_window,
    wait_for_approval,
)
from flows.ui import publish_change_request, show_progress, start_progress
from tasks.change import list_change_requests, read_change_request
from tasks.inventory import resolve_refs

__all__ = ["DeploymentOutcome", "deploy"]


class DeploymentOutcome(BaseModel):
    """How one deployment ended, and under which CR."""

    environment: str
    region: str
    change_request: str | None = None
    state: str
    close_category: str | None = None
    deployment_ready: bool = False
    evidence_count: int = 0
    message: str


@flow(name="deploy", flow_run_name="deploy-{request.environment}-{request.region}")
def deploy(request: DeploymentRequest, stores: RecordStores = DEFAULT_STORES) -> DeploymentOutcome:
    """Deploy what changed in an environment's inventory to one region, under a change request.

    A rerun picks up where an earlier run stopped: the open CR for the same change (or the one
    named by the request) is carried on from its state, with its delta and its summary, so a
    crash never files a second CR for one deployment.

    Args:
        request: what to deploy where, and how.
        stores: the saved blocks that hold the records.
    """
    environment, region = request.environment, request.region
    # a run the API let through without the forms' choices is checked before anything is read
    spec = deployment_spec(request)
    locker = config.evidence_locker(stores.evidence_locker)
    inventory = config.inventory(stores.inventory)
    changes = config.change_management(stores.change_management)
    incidents = config.incidents(stores.incidents, stores.change_management)
    head, previous = resolve_refs(inventory, [environment, deployed_label(environment, region)])
    if head is None:
        raise BadInput(f"unknown environment {environment!r}: the inventory has no such branch")

    filed: list[ChangeRequest] = []
    if request.change_request:
        cr = carry_on_with(
            read_change_request(changes, request.change_request), environment, region
        )
    else:
        filed = list_change_requests(changes)
        cr = resumable(filed, environment, region, head, previous)
    if cr is None:
        cr = file_change(
            inventory, locker, changes, spec, request, head, previous, filed, incidents
        )
        if cr is None:
            return DeploymentOutcome(
                environment=environment, region=region, state="skipped",
                message="nothing to deploy",
            )  # fmt: skip
    else:
        get_run_logger().info("carrying on with %s from %s", cr.id, cr.state.value)

    progress = start_progress(environment, region)
    show_progress(progress, cr)
    while cr.state not in (ChangeState.closed, ChangeState.cancelled, ChangeState.review):
        if cr.state is ChangeState.assess:
            cr = authorize(changes, cr, request.emergency)
        elif cr.state is ChangeState.authorize:
            cr = wait_for_approval(changes, cr, spec.approval_timeout_s)
        elif cr.state is ChangeState.scheduled:
            cr = start_in_window(changes, spec, cr)
        elif cr.state is ChangeState.implement:
            cr = implement(inventory, locker, changes, spec, cr)
        show_progress(progress, cr)
    publish_change_request(cr, changes.link(cr))
    if cr.state is ChangeState.cancelled:
        return _outcome(cr, "not approved: the deployment did not go ahead")
    if cr.close_category is CloseCategory.unsuccessful:
        return _outcome(cr, "the deployment failed")
    return _outcome(cr, "deployed")


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
