"""What governs a deployment beyond its evidence: change windows, emergencies, rejection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from blocks import stores as config
from changeflow.models import ChangeState, ChangeType, CloseCategory
from changeflow.requests import DeploymentRequest, RecordStores
from flows.deploy_flow import DeploymentOutcome, deploy


def _deploy(**options: object) -> DeploymentOutcome:
    """Deploy prod to r1 with the stores of the CHANGEFLOW_* variables."""
    request = DeploymentRequest.model_validate({"environment": "prod", "region": "r1", **options})
    return deploy(request, RecordStores.from_env())


def _freeze_now() -> str:
    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    end = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return (
        "[environments.prod.change_windows]\n"
        'outside_window = "refuse"\n'
        "[[environments.prod.change_windows.freezes]]\n"
        f'start = "{start}"\nend = "{end}"\nreason = "year-end freeze"\n'
    )


def test_a_freeze_refuses_the_deployment(deployable: Callable[..., Path]) -> None:
    runs = deployable(_freeze_now())
    outcome = _deploy()
    cr = config.change_management(None).get(outcome.change_request)
    assert cr.state is ChangeState.cancelled
    assert cr.close_category is CloseCategory.cancelled
    assert "year-end freeze" in cr.close_notes
    assert not runs.exists()
    assert config.inventory(None).resolve("r1_prod_latest") is None


def test_an_emergency_is_exempt_and_waits_in_review(deployable: Callable[..., Path]) -> None:
    runs = deployable(_freeze_now(), passing=False)
    outcome = _deploy(emergency=True)
    changes = config.change_management(None)
    cr = changes.get(outcome.change_request)
    assert cr.type is ChangeType.emergency and not cr.deployment_ready
    assert cr.state is ChangeState.review  # deployed, waiting for approval after the fact
    assert runs.read_text().split() == [cr.id]
    assert any("freeze" in h.get("why", "") for h in cr.history)
    assert config.inventory(None).resolve("r1_prod_latest") == cr.inventory_commit


def test_a_failing_deploy_command_closes_unsuccessful_and_keeps_the_labels(
    deployable: Callable[..., Path], tmp_path: Path
) -> None:
    deployable('backout = ["sh", "-c", "echo backed-out > ' + str(tmp_path / "backout") + '"]\n')
    outcome = _deploy(command=["false"])
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
