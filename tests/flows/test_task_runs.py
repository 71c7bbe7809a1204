"""A deploy's number of task runs does not grow with the size of its delta.

On the in-memory stores: what is counted is the flow's task runs, not the adapters' work."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from stack_support import ship_to_prod

from blocks.memory import memory_stores
from blocks.stores import use_stores
from changeflow.ports import Stores
from changeflow.requests import DeploymentRequest
from flows.deploy_flow import deploy


def _task_runs(stores: Stores, change_request: str | None) -> Counter[str]:
    """How many runs of each task the deploy run behind `change_request` made (the server
    records task runs from their events, a moment after they ran: read until it holds still)."""
    assert change_request
    scope = stores.changes.get(change_request).deployment_run_id
    run_id = scope.removeprefix("deploy-")
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])), limit=200
            )
            now = Counter(run.task_key.rsplit("-", 1)[0] for run in runs)
            # a server that records no task runs must fail this test, not pass it empty
            if now and now == seen and all(run.state and run.state.is_final() for run in runs):
                return now
            seen = now
            time.sleep(1)
    raise AssertionError(f"the task runs of {change_request} never held still: {seen}")


def test_a_delta_of_25_entries_takes_the_task_runs_of_a_delta_of_1(
    recording_prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environments = tmp_path / "environments.toml"
    command = json.dumps([sys.executable, "-c", "pass"])
    environments.write_text(f'[environments.prod]\nregions = ["r1"]\ndeploy = {command}\n')
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
    request = DeploymentRequest(environment="prod", region="r1")
    with use_stores(memory_stores()) as stores:
        ship_to_prod(["app/bin"], "p1")
        first = deploy(request)  # a first deployment has no previous one
        ship_to_prod(["app/part"], "p2")
        small = deploy(request)
        ship_to_prod([f"app/part-{i}" for i in range(25)], "p3")
        large = deploy(request)

        assert (first.state, small.state, large.state) == ("closed", "closed", "closed")
        assert (small.evidence_count, large.evidence_count) == (4 + 1, 25 * 4 + 1)
        assert _task_runs(stores, large.change_request) == _task_runs(stores, small.change_request)
