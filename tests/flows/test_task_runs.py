"""A deploy's number of task runs does not grow with the size of its delta."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from stack_support import ship_to_prod

from blocks import stores as config
from changeflow.requests import DeploymentRequest, RecordStores
from flows.deploy_flow import deploy


def _task_runs(change_request: str | None) -> Counter[str]:
    """How many runs of each task the deploy run behind `change_request` made."""
    assert change_request
    scope = config.change_management(None).get(change_request).deployment_run_id
    run_id = scope.removeprefix("deploy-")
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])), limit=200
        )
    return Counter(run.task_key.rsplit("-", 1)[0] for run in runs)


def test_a_delta_of_25_entries_takes_the_task_runs_of_a_delta_of_1(
    deployable: Callable[..., Path],
) -> None:
    deployable()
    request = DeploymentRequest(environment="prod", region="r1")
    first = deploy(request, RecordStores.from_env())  # a first deployment has no previous one
    ship_to_prod(["app/part"], "p2")
    small = deploy(request, RecordStores.from_env())
    ship_to_prod([f"app/part-{i}" for i in range(25)], "p3")
    large = deploy(request, RecordStores.from_env())

    assert (first.state, small.state, large.state) == ("closed", "closed", "closed")
    assert (small.evidence_count, large.evidence_count) == (4 + 1, 25 * 4 + 1)
    assert _task_runs(large.change_request) == _task_runs(small.change_request)
