"""Incidents per artifact in the deploy flow, on the in-memory stores (issue 14).

An incident overdue in prod blocks; one prod has not seen before is dated in prod from today
and does not; a failed deploy command and failing acceptance tests open incidents of their
own; and the run publishes the trace of its delta as a Prefect artifact.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from stack_support import ship_to_prod

from blocks.memory import memory_stores
from blocks.stores import use_stores
from changeflow.incidents import DEPLOY_FAILED, FoundIn, Incident, incident_id
from changeflow.models import ChangeRequest, CloseCategory, Severity
from changeflow.ports import Stores
from changeflow.requests import DeploymentRequest
from flows.deploy_flow import DeploymentOutcome, deploy

_JUNIT = (
    '<testsuite name="acceptance" tests="1" failures="1"><testcase classname="smoke" '
    'name="responds"><failure message="down">service down</failure></testcase></testsuite>'
)


@pytest.fixture
def stores(prefect_api: str) -> Iterator[Stores]:
    """app/bin with passing evidence, recorded on master and promoted to prod (runs go to the
    suite's Prefect server)."""
    with use_stores(memory_stores()) as opened:
        ship_to_prod(["app/bin"], "p1")
        yield opened


def _environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, deploy_exit: int, extra: str = ""
) -> None:
    command = [sys.executable, "-c", f"raise SystemExit({deploy_exit})"]
    path = tmp_path / "environments.toml"
    path.write_text(
        f'[environments.prod]\nregions = ["r1"]\ndeploy = {json.dumps(command)}\n'
        f"approval_timeout_s = 1\n[environments.prod.grace_periods]\nhigh = 10\n{extra}"
    )
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(path))


def _deploy(stores: Stores) -> tuple[DeploymentOutcome, ChangeRequest, UUID]:
    """Deploy prod/r1 to its end (not pausing: the state of a paused run is no outcome)."""
    state = deploy(DeploymentRequest(environment="prod", region="r1"), return_state=True)
    outcome = state.result()
    assert isinstance(outcome, DeploymentOutcome) and outcome.change_request, outcome
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    return outcome, stores.changes.get(outcome.change_request), run_id


def _on_the_artifact(stores: Stores, finding: str, **update: object) -> Incident:
    uri = stores.inventory.entries("prod")["app/bin"].provenance
    found = date(2020, 1, 1)
    incident = Incident(
        id=incident_id(uri, "bandit", finding), asset_uri=uri, tool="bandit", finding_id=finding,
        evidence_type_id="com.ibm.static_scan", severity=Severity.high, found=found,
        due=found + timedelta(days=30), evidence_id="0" * 64,
    ).model_copy(update=update)  # fmt: skip
    stores.incidents.put_incidents([incident], "found by CI")
    return incident


def test_an_incident_overdue_in_prod_blocks_and_one_new_to_prod_is_dated_there(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _environments(tmp_path, monkeypatch, deploy_exit=0)
    in_prod = FoundIn(found=date(2020, 1, 1), due=date(2020, 1, 11))
    late = _on_the_artifact(stores, "B105", environments={"prod": in_prod})
    # CI found this one in 2020 too (its CI due date passed), but prod has never run it
    new_to_prod = _on_the_artifact(stores, "B311")

    outcome = deploy(DeploymentRequest(environment="prod", region="r1"))

    assert outcome.change_request is not None
    cr = stores.changes.get(outcome.change_request)
    assert outcome.state == "cancelled" and not cr.deployment_ready
    assert f"overdue: {late.line_in('prod')}" in cr.readiness_reasons
    assert not any(new_to_prod.id in reason for reason in cr.readiness_reasons)
    stored = {i.id: i for i in stores.incidents.incidents()}
    assert stored[late.id].environments == {"prod": in_prod}  # never reset by a later run
    today = date.today()
    assert stored[new_to_prod.id].environments == {
        "prod": FoundIn(found=today, due=today + timedelta(days=10))
    }


def test_failed_deploys_and_acceptance_open_incidents_and_the_trace_is_on_the_run(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = stores.inventory.entries("prod")["app/bin"].provenance
    _environments(tmp_path, monkeypatch, deploy_exit=3)

    _, failed, run_id = _deploy(stores)

    assert failed.close_category is CloseCategory.unsuccessful
    (opened,) = stores.incidents.incidents()
    assert opened.id == incident_id(uri, "changeflow-deploy@prod/r1", DEPLOY_FAILED)
    assert (opened.state, opened.change_request) == ("open", failed.id)
    with get_client(sync_client=True) as client:
        [published] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
                key=ArtifactFilterKey(any_=["trace-prod-r1"]),
            )
        )
    markdown = str(published.data)
    assert markdown.startswith(f"# Trace of {failed.id}: prod/r1")
    # a deploy that failed deployed nothing: it shows as the artifact's incident
    assert "  deployments:\n    none\n" in markdown and "passed (5 evidence)" in markdown
    assert f"{opened.id}  open     changeflow-deploy@prod/r1 {DEPLOY_FAILED}" in markdown

    # the deploy command works again, the acceptance tests fail
    report = tmp_path / "acceptance.xml"
    report.write_text(_JUNIT)
    acceptance = f'[environments.prod.acceptance]\ncommand = ["cp", "{report}", "a.xml"]\n'
    _environments(tmp_path, monkeypatch, deploy_exit=0, extra=acceptance + 'report = "a.xml"\n')

    _, deployed, _ = _deploy(stores)

    assert deployed.close_category is CloseCategory.successful_issues
    by_tool = {i.tool: i for i in stores.incidents.incidents()}
    assert by_tool["changeflow-deploy@prod/r1"].state == "closed"
    failing = by_tool["acceptance-tests@prod/r1"]
    assert (failing.state, failing.asset_uri, failing.change_request) == (
        "open", uri, deployed.id,
    )  # fmt: skip
    assert failing.finding_id.endswith("responds") and "prod" in failing.environments
