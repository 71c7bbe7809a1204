"""The deploy flow: one change request per environment and region, built from the evidence."""

from collections.abc import Callable

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow
from prefect.runtime import flow_run
from pydantic import BaseModel

from changeflow.change import carry_on_with, resumable
from changeflow.deploying import in_doubt
from changeflow.models import ChangeRequest, ChangeState, CloseCategory
from changeflow.requests import DEFAULT_STORES, DeploymentRequest, RecordStores
from flows.deploy_steps import Deployment, authorize, file_change, implement, open_deployment
from flows.deploy_waits import start_in_window, wait_for_approval
from flows.tracing import publish_trace
from flows.ui import publish_change_request, show_progress, start_progress
from flows.ui_publishing import publishing_alongside
from tasks.change import list_change_requests, read_change_request

__all__ = ["DeploymentOutcome", "deploy", "run_deploy"]

# the step that moves a CR on from each state the flow works through
_STEPS: dict[ChangeState, Callable[[Deployment, ChangeRequest], ChangeRequest]] = {
    ChangeState.assess: authorize,
    ChangeState.authorize: wait_for_approval,
    ChangeState.scheduled: start_in_window,
    ChangeState.implement: implement,
}


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
    named by the request, or the one this run was rescheduled to its change window with) is
    carried on from its state, with its delta and its summary, so a crash never files a second
    CR for one deployment. Outside its change window the run is rescheduled to the opening
    instead of waiting in its process (`flows.deploy_waits`).

    Args:
        request: what to deploy where, and how.
        stores: the saved blocks that hold the records.
    """
    # the artifacts it shows are sent beside its tasks, every one of them before it ends
    with publishing_alongside():
        return _deploy(request, stores)


def _deploy(request: DeploymentRequest, stores: RecordStores) -> DeploymentOutcome:
    # the request is checked before anything is read: a run the API let through without the
    # forms' choices is refused here
    d = open_deployment(request, stores)
    filed: list[ChangeRequest] = []
    if request.change_request:
        named = read_change_request(d.stores.changes, request.change_request)
        cr: ChangeRequest | None = carry_on_with(named, d.environment, d.region)
    else:
        filed = list_change_requests(d.stores.changes, d.environment)
        cr = resumable(filed, d.environment, d.region, d.head, d.previous, flow_run.get_id())
    if cr is None:
        cr = file_change(d, filed)
        if cr is None:
            return DeploymentOutcome(
                environment=d.environment, region=d.region, state="skipped",
                message="nothing to deploy",
            )  # fmt: skip
    else:
        get_run_logger().info("carrying on with %s from %s", cr.id, cr.state.value)

    progress = start_progress(cr)
    while cr.state in _STEPS:
        # a CR whose deploy command may have run without a recorded outcome waits for a person
        # (approve: run it again; reject: close it unsuccessful), as one that is not ready does
        step = wait_for_approval if in_doubt(cr) else _STEPS[cr.state]
        cr = step(d, cr)
        show_progress(progress, cr)
    publish_change_request(cr, d.stores.changes.link(cr))
    publish_trace(d.stores, cr)  # what happened to each artifact of its delta, up to now
    if cr.state is ChangeState.cancelled:
        return _outcome(cr, "not approved: the deployment did not go ahead")
    if cr.close_category is CloseCategory.unsuccessful:
        return _outcome(cr, "the deployment failed")
    return _outcome(cr, "deployed")


def run_deploy(
    request: DeploymentRequest, stores: RecordStores = DEFAULT_STORES
) -> DeploymentOutcome:
    """Run the deploy flow in this process (as the CLI does) until the deployment ends.

    A run outside its change window is rescheduled to the opening and ends its process, for a
    worker to run it again then. In this process nobody else will: the same flow run is run
    again here, Prefect holding it until its scheduled time, as often as it is rescheduled.
    """
    run: FlowRun | None = None
    while True:
        try:
            outcome = deploy(request, stores) if run is None else run_flow(deploy, flow_run=run)
        except Pause as paused:
            run = _rescheduled(paused)
            continue
        if not isinstance(outcome, DeploymentOutcome):
            raise TypeError(f"the deploy run returned {type(outcome).__name__}")
        return outcome


def _rescheduled(paused: Pause) -> FlowRun:
    """The flow run a `Pause` left Scheduled for its change window (re-raised otherwise)."""
    state = paused.state
    run_id = state.state_details.flow_run_id if state is not None else None
    if state is None or not state.is_scheduled() or run_id is None:
        raise paused
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


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
