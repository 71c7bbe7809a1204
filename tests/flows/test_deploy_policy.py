"""What governs a deployment beyond its evidence: change windows, emergencies, rejection."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow
from prefect.states import Scheduled

from blocks import stores as config
from changeflow.models import ChangeState, CloseCategory
from changeflow.requests import DeploymentRequest, RecordStores
from flows.deploy_flow import DeploymentOutcome, deploy, run_deploy
from flows.deploy_waits import AWAITING_WINDOW, START_MARGIN
from flows.local_deployment import use_local_deployment


def _deploy(**options: object) -> DeploymentOutcome:
    """Deploy prod to r1 with the stores of the CHANGEFLOW_* variables."""
    request = DeploymentRequest.model_validate({"environment": "prod", "region": "r1", **options})
    return deploy(request, RecordStores.from_env())


def _freeze_now(
    until: datetime | None = None, reason: str = "year-end freeze", outside: str = "refuse"
) -> str:
    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    end = (until or datetime.now(UTC) + timedelta(days=1)).isoformat()
    return (
        "[environments.prod.change_windows]\n"
        f'outside_window = "{outside}"\n'
        "[[environments.prod.change_windows.freezes]]\n"
        f'start = "{start}"\nend = "{end}"\nreason = "{reason}"\n'
    )


def _declare(windows: str) -> None:
    """Replace prod's change windows in the environments file the deploy flow reads."""
    path = Path(os.environ["CHANGEFLOW_ENVIRONMENTS"])
    text = path.read_text().split("[environments.prod.change_windows]")[0]
    path.write_text(text + windows)


def _states(run_id: str | None) -> list[Any]:
    """A flow run's states, oldest first."""
    assert run_id
    with get_client(sync_client=True) as client:
        return sorted(client.read_flow_run_states(run_id), key=lambda s: s.timestamp)


# A freeze refusing a deployment and an emergency exempt from it run on the in-memory stores
# (tests/flows/test_flow_logic.py): nothing of them is in an adapter.


def test_a_failing_deploy_command_closes_unsuccessful_and_keeps_the_labels(
    deployable: Callable[..., Path], tmp_path: Path
) -> None:
    deployable('backout = ["sh", "-c", "echo backed-out > ' + str(tmp_path / "backout") + '"]\n')
    # the CLI's --command: the process's own choice, never a run parameter
    with use_local_deployment(["false"]):
        outcome = _deploy()
    cr = config.change_management(None).get(outcome.change_request)
    assert cr.close_category is CloseCategory.unsuccessful
    assert (tmp_path / "backout").read_text().strip() == "backed-out"
    assert config.inventory(None).resolve("r1_prod_latest") is None


def test_nothing_changed_files_no_change_request(deployable: Callable[..., Path]) -> None:
    deployable()
    first = _deploy()
    again = _deploy()
    assert first.state == "closed" and again.state == "skipped"
    forced = _deploy(force=True)
    assert forced.change_request != first.change_request and forced.state == "closed"


def test_outside_its_window_a_run_frees_its_process_and_deploys_at_the_opening(
    deployable: Callable[..., Path],
) -> None:
    runs = deployable()
    # the first attempt reaches its window (in a second or two) well before the freeze ends
    opening = datetime.now(UTC) + timedelta(seconds=8)
    _declare(_freeze_now(until=opening, reason="db upgrade", outside="wait"))

    outcome = run_deploy(
        DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env()
    )

    assert outcome.state == "closed" and outcome.close_category == "successful"
    cr = config.change_management(None).get(outcome.change_request)
    assert runs.read_text().split() == [cr.id]
    [waited] = [h["event"] for h in cr.history if "event" in h]
    assert "frozen until" in waited and "db upgrade" in waited and "waiting until" in waited
    states = _states(cr.flow_run_id)
    # the run left the worker (or here, this process) in a Scheduled state, and ran again
    assert [s.name for s in states][-4:] == ["Running", AWAITING_WINDOW, "Running", "Completed"]
    assert states[-3].state_details.scheduled_time == opening + START_MARGIN
    assert states[-2].timestamp >= opening
    [implement] = [h for h in cr.history if h.get("to") == "implement"]
    # a CR records whole seconds
    assert datetime.fromisoformat(implement["date"]) >= opening.replace(microsecond=0)


def test_a_freeze_declared_while_a_run_waits_holds_at_the_opening(
    deployable: Callable[..., Path],
) -> None:
    runs = deployable(_freeze_now(reason="release freeze", outside="wait"))
    with pytest.raises(Pause) as paused:
        deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())
    waiting = paused.value.state
    assert waiting is not None and waiting.is_scheduled() and waiting.name == AWAITING_WINDOW
    run_id = waiting.state_details.flow_run_id
    changes = config.change_management(None)
    [cr] = changes.list()
    assert cr.state is ChangeState.scheduled and cr.flow_run_id == str(run_id)

    # meanwhile the release freeze is lifted, and an incident freeze declared
    incident_end = datetime.now(UTC) + timedelta(days=2)
    _declare(_freeze_now(until=incident_end, reason="incident freeze", outside="wait"))
    # the opening comes (here: at once, rather than waiting a day for it)
    with get_client(sync_client=True) as client:
        now = Scheduled(scheduled_time=datetime.now(UTC), name=AWAITING_WINDOW)
        client.set_flow_run_state(run_id, now, force=True)
        run = client.read_flow_run(run_id)
    with pytest.raises(Pause) as again:
        run_flow(deploy, flow_run=run)

    rescheduled = again.value.state
    assert rescheduled is not None
    assert rescheduled.state_details.scheduled_time == incident_end + START_MARGIN
    assert [c.id for c in changes.list()] == [cr.id]  # the same CR, carried on
    cr = changes.get(cr.id)
    assert cr.state is ChangeState.scheduled
    waits = [h["event"] for h in cr.history if "event" in h]
    assert len(waits) == 2 and "release freeze" in waits[0] and "incident freeze" in waits[1]
    assert not runs.exists()
