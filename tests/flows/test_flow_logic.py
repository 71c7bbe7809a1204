"""The deploy flow's decisions, run on the in-memory stores against a real Prefect API.

Policy, approval states, change windows, emergencies and recovery: the real `deploy` flow, its
tasks and its pauses, with `blocks.memory` behind the ports instead of SeaweedFS and git, so each
case takes seconds. The contract suite (tests/contract/test_ports.py) holds the in-memory stores
to the real ones; the integration tests beside this file run the same flow on the real stack.
"""

from __future__ import annotations

import contextvars
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from stack_support import ship_to_prod

from blocks.memory import (
    MemoryChangeManagement,
    MemoryEvidenceStore,
    MemoryInventory,
    memory_stores,
)
from blocks.stores import open_stores, use_stores
from changeflow.incidents import Incident, incident_id
from changeflow.models import ChangeRequest, ChangeState, ChangeType, CloseCategory, Severity
from changeflow.ports import Stores
from changeflow.requests import DeploymentRequest
from cli.changes import cr_approve, cr_reject
from flows.deploy_flow import DeploymentOutcome, deploy

APPLICATION = "https://example.com/app"  # the repository ship_to_prod's entries come from


@pytest.fixture
def environments(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """Write the environments file for prod/r1 (extra TOML appended to prod's table); return the
    file the deploy command appends each deployment's CR id to."""

    def write(extra: str = "") -> Path:
        runs = tmp_path / "deploys.txt"
        record = (
            "import os, sys; "
            "print(os.environ['CHANGEFLOW_CHANGE_REQUEST'], file=open(sys.argv[1], 'a'))"
        )
        command = [sys.executable, "-c", record, str(runs)]
        environments = tmp_path / "environments.toml"
        environments.write_text(
            f'[environments.prod]\nregions = ["r1"]\ndeploy = {json.dumps(command)}\n{extra}'
        )
        monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
        return runs

    return write


@contextmanager
def _stores(locked: bool = True, passing: bool = True) -> Iterator[Stores]:
    """Fresh in-memory stores for every run of this process, holding one artifact with the
    default required evidence, recorded on master and promoted to prod."""
    with use_stores(memory_stores(locked=locked)) as stores:
        ship_to_prod(["app/bin"], "p1", passing)
        yield stores


@pytest.fixture
def stores() -> Iterator[Stores]:
    with _stores() as opened:
        yield opened


@pytest.fixture
def failing() -> Iterator[Stores]:
    """The artifact's unit tests failed."""
    with _stores(passing=False) as opened:
        yield opened


def _deploy(**options: object) -> tuple[DeploymentOutcome, ChangeRequest]:
    request = DeploymentRequest.model_validate({"environment": "prod", "region": "r1", **options})
    outcome = deploy(request)
    assert outcome.change_request is not None, outcome.message
    return outcome, open_stores().changes.get(outcome.change_request)


def _deployed(runs: Path) -> list[str]:
    return runs.read_text().split() if runs.exists() else []


def _freeze_now() -> str:
    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    end = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return (
        '[environments.prod.change_windows]\noutside_window = "refuse"\n'
        "[[environments.prod.change_windows.freezes]]\n"
        f'start = "{start}"\nend = "{end}"\nreason = "year-end freeze"\n'
    )


# -- policy and approval states -------------------------------------------------------------


def test_a_ready_change_is_approved_deployed_and_closed(
    stores: Stores, environments: Callable[..., Path]
) -> None:
    runs = environments()
    outcome, cr = _deploy()
    assert outcome.state == "closed" and outcome.deployment_ready
    assert cr.close_category is CloseCategory.successful
    assert [(a.by, a.automatic) for a in cr.approvals] == [("changeflow", True)]
    assert _deployed(runs) == [cr.id]
    labels = stores.inventory.labels()
    assert labels["r1_prod_latest"] == labels["prod_latest"] == cr.inventory_commit
    assert labels[cr.id] == stores.inventory.resolve("prod")
    assert cr.evidence_summary_url and cr.evidence_summary_sha256
    summary = stores.evidence.verify_summary(cr.evidence_summary_url, cr.evidence_summary_sha256)
    assert summary.broken == [] and summary.checked > 1
    history = stores.changes.history(cr.id)
    assert len(history) >= 4 and "state: closed" in history[0].message
    # nothing changed since: no second change request
    assert deploy(DeploymentRequest(environment="prod", region="r1")).state == "skipped"
    assert [c.id for c in stores.changes.list()] == [cr.id]


def _overdue(stores: Stores) -> str:
    found = date(2020, 1, 1)
    incident = Incident(
        id=incident_id(APPLICATION, "bandit", "B105"), asset_uri=APPLICATION, tool="bandit",
        finding_id="B105", evidence_type_id="com.ibm.static_scan", severity=Severity.high,
        found=found, due=found + timedelta(days=30), evidence_id="0" * 64,
    )  # fmt: skip
    stores.incidents.put_incidents([incident], "found by CI")
    return incident.id


BLOCKERS: dict[str, tuple[dict[str, bool], Callable[[Stores], str]]] = {
    "a failing required check": ({"passing": False}, lambda s: "com.ibm.unit_tests is failure"),
    "an evidence store without Object Lock": (
        {"locked": False},
        lambda s: "com.ibm.immutable_storage is failure",
    ),
    "an overdue incident": ({}, _overdue),
}


@pytest.mark.parametrize("blocker", list(BLOCKERS))
def test_what_is_not_ready_waits_for_a_person_and_a_timeout_cancels(
    blocker: str, environments: Callable[..., Path]
) -> None:
    setup, why = BLOCKERS[blocker]
    runs = environments("approval_timeout_s = 2\n")
    with _stores(**setup) as stores:
        reason = why(stores)
        outcome, cr = _deploy()
        assert outcome.state == "cancelled" and not cr.deployment_ready
        assert any(reason in r for r in cr.readiness_reasons), cr.readiness_reasons
        decision = cr.decision
        assert decision is not None and decision.decision == "rejected"
        assert (decision.by, decision.comment) == ("changeflow", "approval timed out")
        assert _deployed(runs) == []
        assert "r1_prod_latest" not in stores.inventory.labels()


def test_a_failing_recommended_check_only_warns(
    failing: Stores, environments: Callable[..., Path]
) -> None:
    checks = [
        ("com.ibm.unit_tests", "recommended"),
        ("com.ibm.static_scan", "required"),
        ("com.ibm.immutable_storage", "required"),
    ]
    policy = "".join(
        f'[[environments.prod.policy.checks]]\nevidence_type_id = "{t}"\nlevel = "{level}"\n'
        for t, level in checks
    )
    runs = environments(policy)
    _, cr = _deploy()
    assert cr.deployment_ready and cr.approvals[0].automatic
    assert any("com.ibm.unit_tests is failure" in r for r in cr.readiness_reasons)
    assert cr.close_category is CloseCategory.successful
    assert _deployed(runs) == [cr.id]


def _decide_when_waiting(approve: bool) -> tuple[threading.Thread, list[BaseException]]:
    """A person who, once a CR waits for approval, approves or rejects it with the CLI."""
    changes, errors = open_stores().changes, []

    def person() -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                waiting = [
                    cr
                    for cr in changes.list()
                    if cr.state is ChangeState.authorize and cr.flow_run_id
                ]
                if waiting:
                    decide = cr_approve if approve else cr_reject
                    decide(waiting[0].id, by="carol", comment="looked at it")
                    return
                time.sleep(0.1)
            raise TimeoutError("no change request waited for approval")
        except BaseException as exc:
            errors.append(exc)

    # Prefect's settings (the API URL) live in the test's context: the person's thread gets a copy
    thread = threading.Thread(target=contextvars.copy_context().run, args=(person,))
    thread.start()
    return thread, errors


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "rejected"])
def test_a_person_decides_a_change_that_is_not_ready(
    approve: bool, failing: Stores, environments: Callable[..., Path]
) -> None:
    runs = environments("approval_timeout_s = 120\n")
    person, errors = _decide_when_waiting(approve)
    outcome, cr = _deploy()
    person.join()
    assert errors == []
    assert not cr.deployment_ready and not cr.approvals[-1].automatic
    assert (cr.approvals[-1].by, cr.approvals[-1].decision) == (
        "carol",
        "approved" if approve else "rejected",
    )
    if approve:
        assert cr.state is ChangeState.closed
        assert cr.close_category is CloseCategory.successful_issues
        assert _deployed(runs) == [cr.id]
    else:
        assert outcome.state == "cancelled" and cr.state is ChangeState.cancelled
        assert _deployed(runs) == []


# -- change windows and emergencies ---------------------------------------------------------


def test_outside_its_window_a_change_is_refused(
    stores: Stores, environments: Callable[..., Path]
) -> None:
    runs = environments(_freeze_now())
    _, cr = _deploy()
    assert cr.state is ChangeState.cancelled and cr.close_category is CloseCategory.cancelled
    assert "year-end freeze" in cr.close_notes
    assert _deployed(runs) == []
    assert "r1_prod_latest" not in stores.inventory.labels()


def test_an_emergency_is_exempt_deploys_and_waits_in_review(
    failing: Stores, environments: Callable[..., Path]
) -> None:
    runs = environments(_freeze_now())
    _, cr = _deploy(emergency=True)
    assert cr.type is ChangeType.emergency and not cr.deployment_ready
    assert cr.state is ChangeState.review  # deployed; approved after the fact
    assert any("freeze" in h.get("why", "") for h in cr.history)
    assert _deployed(runs) == [cr.id]
    assert failing.inventory.labels()["r1_prod_latest"] == cr.inventory_commit


# -- recovery -------------------------------------------------------------------------------


class Crash(BaseException):
    """The injected failure: like a killed process, not an error a task would retry."""


CRASHES: dict[str, tuple[type, str, Callable[..., bool]]] = {
    # the summary is stored, no CR filed yet
    "summary": (MemoryEvidenceStore, "put_summary", lambda *a, **k: True),
    # filed, not yet assessed
    "assess": (
        MemoryChangeManagement,
        "update",
        lambda self, cr, message, *a, **k: message == "approved automatically",
    ),
    # approved, not yet implementing
    "implement": (
        MemoryChangeManagement,
        "update",
        lambda self, cr, *a, **k: cr.state is ChangeState.implement,
    ),
    # deployed, labels not moved
    "labels": (MemoryInventory, "move_labels", lambda *a, **k: True),
    # deployed and labelled, CR not closed
    "close": (
        MemoryChangeManagement,
        "update",
        lambda self, cr, *a, **k: cr.state is ChangeState.closed,
    ),
}


@pytest.mark.parametrize("step", list(CRASHES))
def test_a_rerun_carries_on_with_the_open_change_request(
    step: str, stores: Stores, environments: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = environments()
    owner, name, when = CRASHES[step]
    original, armed = getattr(owner, name), [True]

    def crashing(*args: object, **kwargs: object) -> object:
        if armed[0] and when(*args, **kwargs):
            raise Crash(f"injected crash in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)
    with pytest.raises(Crash):
        _deploy()
    armed[0] = False

    _, cr = _deploy()
    assert [c.id for c in stores.changes.list()] == [cr.id] == ["CHG0000001"]
    assert cr.state is ChangeState.closed and cr.close_category is CloseCategory.successful
    assert set(_deployed(runs)) == {cr.id}
    assert _deployed(runs) == [cr.id]  # once: a rerun never runs the deploy command again
    assert stores.inventory.labels()["r1_prod_latest"] == stores.inventory.resolve("prod")
    assert deploy(DeploymentRequest(environment="prod", region="r1")).state == "skipped"
    assert len(stores.changes.list()) == 1
