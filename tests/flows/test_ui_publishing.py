"""A run's artifacts are sent beside its tasks, and all of them are in the API when it ends."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow, get_client
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.objects import Artifact
from prefect.runtime import flow_run
from stack_support import ship_to_prod

from blocks.memory import memory_stores
from blocks.stores import use_stores
from changeflow.ports import Stores
from changeflow.requests import DeploymentRequest
from flows.deploy_flow import deploy
from flows.ui_publishing import publish, publishing_alongside, wait_until_shown


@pytest.fixture
def stores(prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stores]:
    environments = tmp_path / "environments.toml"
    command = json.dumps([sys.executable, "-c", "pass"])
    environments.write_text(f'[environments.prod]\nregions = ["r1"]\ndeploy = {command}\n')
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
    with use_stores(memory_stores()) as opened:
        ship_to_prod(["app/bin"], "p1")
        yield opened


def _artifacts(run_id: UUID | str, *keys: str) -> list[Artifact]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(run_id))]),
                key=ArtifactFilterKey(any_=list(keys)) if keys else None,
            )
        )


def test_a_deploy_run_ends_with_every_artifact_it_shows_in_the_api(stores: Stores) -> None:
    outcome = deploy(DeploymentRequest(environment="prod", region="r1"))

    assert outcome.state == "closed" and outcome.change_request
    cr = stores.changes.get(outcome.change_request)
    run_id = cr.deployment_run_id.removeprefix("deploy-")
    # read at once: nothing is left on the publishing thread when the run has ended
    shown = {a.key: a for a in _artifacts(run_id)}
    assert set(shown) >= {
        "delta-prod-r1",
        "evidence-summary-prod-r1",
        "change-request-prod-r1",
        "deployment-progress-prod-r1",
        "trace-prod-r1",
    }
    assert f"{cr.id}" in str(shown["change-request-prod-r1"].data)
    assert shown["change-request-prod-r1"].description == f"{cr.id} (closed)"
    # the progress moved on in order, through every state, to its end
    progress = shown["deployment-progress-prod-r1"]
    assert progress.data == 100.0 and progress.description == f"{cr.id}: closed"


def test_artifacts_are_sent_in_order_on_one_thread_and_a_failure_is_only_logged(
    prefect_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    callers: list[str] = []
    key = "ui-publishing-order"

    def refused() -> None:
        callers.append(threading.current_thread().name)
        raise RuntimeError("the API refused it")

    @flow
    def shows() -> str:
        with publishing_alongside():
            publish(refused)
            for n in range(5):
                publish(create_markdown_artifact, markdown=f"# {n}", key=key)
            wait_until_shown()  # all five are in the API before the run goes on
            assert len(_artifacts(str(flow_run.get_id()), key)) == 5
            publish(create_markdown_artifact, markdown="# last", key=key)
        return str(flow_run.get_id())

    with caplog.at_level(logging.WARNING):
        run_id = shows()

    assert callers and callers[0] != threading.main_thread().name
    published = sorted(_artifacts(run_id, key), key=lambda a: a.created or 0)
    assert [a.data for a in published] == ["# 0", "# 1", "# 2", "# 3", "# 4", "# last"]
    assert "not published: the API refused it" in caplog.text
