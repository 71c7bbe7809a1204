"""Issue 13: who may decide, from where. A commit's author recorded by `inventory add` may not
approve its deployment; a decision taken in ServiceNow resumes or cancels the paused run.

The deploy flow runs on the in-memory stores against a real Prefect API (as in
test_flow_logic.py); the ServiceNow case keeps its CRs in the local ServiceNow instance.
"""

from __future__ import annotations

import contextvars
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from pydantic import SecretStr
from stack_support import ship_to_prod

import flows.deploy_waits
from blocks.memory import MemoryEvidenceStore, MemoryIncidents, MemoryInventory, memory_stores
from blocks.servicenow import ServiceNowChangeManagement
from blocks.stores import open_stores, use_stores
from changeflow.authors import CommitAuthor
from changeflow.errors import BadInput
from changeflow.evidence import make_evidence
from changeflow.models import Asset, ChangeRequest, ChangeState, Promotion
from changeflow.ports import Stores
from changeflow.readiness import DEFAULT_REQUIRED_TYPES
from changeflow.render import render_change_request
from changeflow.requests import DeploymentRequest
from cli.changes import cr_approve
from cli.inventory import inventory_add
from flows.deploy_flow import deploy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from servicenow_fake import ServiceNowFake

EVE = "Eve Author <eve@example.com>"


@pytest.fixture
def environments(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], Path]:
    """prod/r1 with an unsigned approval (no approvers listed); returns the file the deploy
    command appends each deployment's CR id to."""
    runs = tmp_path / "deploys.txt"

    def write() -> Path:
        record = (
            "import os, sys; "
            "print(os.environ['CHANGEFLOW_CHANGE_REQUEST'], file=open(sys.argv[1], 'a'))"
        )
        environments = tmp_path / "environments.toml"
        environments.write_text(
            f'[environments.prod]\nregions = ["r1"]\n'
            f"deploy = {json.dumps([sys.executable, '-c', record, str(runs)])}\n"
            "approval_timeout_s = 120\n"
        )
        monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
        return runs

    return write


def _when_waiting(act: Callable[[ChangeRequest], None]) -> tuple[threading.Thread, list[object]]:
    """Once a CR waits for approval, `act` on it (in a thread, as a person would)."""
    changes, seen = open_stores().changes, list[object]()

    def person() -> None:
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                waiting = [
                    c for c in changes.list() if c.state is ChangeState.authorize and c.flow_run_id
                ]
                if waiting:
                    act(waiting[0])
                    return
                time.sleep(0.1)
            raise TimeoutError("no change request waited for approval")
        except BaseException as exc:
            seen.append(exc)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(person,))
    thread.start()
    return thread, seen


def _authored_commit(repo: Path) -> str:
    """A commit by Eve in a fresh checkout: the CI job's working copy."""
    env = {
        "GIT_AUTHOR_NAME": "Eve Author", "GIT_AUTHOR_EMAIL": "eve@example.com",
        "GIT_COMMITTER_NAME": "CI", "GIT_COMMITTER_EMAIL": "ci@example.com",
        "HOME": str(repo), "PATH": "/usr/bin:/bin",
    }  # fmt: skip
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    commit = ["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "feature"]
    subprocess.run(commit, check=True, env=env)
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, env=env, capture_output=True
    )
    return done.stdout.decode().strip()


def test_the_commit_author_recorded_by_ci_may_not_approve_its_deployment(
    environments: Callable[[], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = environments()
    repo = tmp_path / "checkout"
    sha = _authored_commit(repo)
    with use_stores(memory_stores()) as stores:
        stored = stores.evidence.store_attachment_bytes(b"app bytes", "app.bin")
        artifact = Asset.for_uri(f"artifact://app/bin@{stored.hash}")
        for kind in DEFAULT_REQUIRED_TYPES:  # the unit tests failed: a person must decide
            result = "failure" if kind == DEFAULT_REQUIRED_TYPES[0] else "success"
            evidence = make_evidence(
                evidence_type_id=kind, result=result, tool="t", scope="ci-1", assets=[artifact]
            )
            stores.evidence.put_evidence(evidence, [artifact])
        monkeypatch.chdir(repo)  # no --author: the CI checkout's commit names its author
        inventory_add(
            name="app/bin", artifact=stored.url, version="1", sha256=stored.hash, type_="file",
            repository_url="https://example.com/app", commit_sha=sha, build_number="1",
            pipeline_run_id="ci-1", provenance=artifact.uri,
        )  # fmt: skip
        assert stores.inventory.entries("master")["app/bin"].author == CommitAuthor(identity=EVE)
        stores.inventory.promote(
            Promotion(id="p1", source="master", target="prod", assigned_to="rm",
                      description="d", backout_plan="b")
        )  # fmt: skip
        refusals: list[str] = []

        def eve_then_frank(cr: ChangeRequest) -> None:
            for spelling in ("eve@example.com", "Eve Author"):
                try:
                    cr_approve(cr.id, by=spelling)
                except BadInput as refused:
                    refusals.append(str(refused))
            cr_approve(cr.id, by="frank@example.com")

        person, errors = _when_waiting(eve_then_frank)
        outcome = deploy(DeploymentRequest(environment="prod", region="r1"))
        person.join()
        assert errors == []
        assert outcome.change_request is not None
        cr = stores.changes.get(outcome.change_request)
    assert cr.delta_authors == [CommitAuthor(identity=EVE)]
    assert len(refusals) == 2 and all(r.startswith("separation of duties: ") for r in refusals)
    assert [(a.by, a.decision) for a in cr.approvals] == [("frank@example.com", "approved")]
    assert cr.state is ChangeState.closed and runs.read_text().split() == [cr.id]


@pytest.fixture
def servicenow(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stores, ServiceNowFake]]:
    """The in-memory stores, but the CRs in the local ServiceNow instance; the paused run asks
    ServiceNow for a decision every 0.2 s."""
    monkeypatch.setattr(flows.deploy_waits, "BACKEND_POLL_S", 0.2)
    fake = ServiceNowFake().start()
    changes = ServiceNowChangeManagement(
        instance_url=fake.url, username=fake.username, password=SecretStr(fake.password)
    )
    stores = Stores(MemoryEvidenceStore(), MemoryInventory(), changes, MemoryIncidents())
    try:
        with use_stores(stores):
            ship_to_prod(["app/bin"], "p1", passing=False)
            yield stores, fake
    finally:
        fake.stop()


def _decide_in_servicenow(fake: ServiceNowFake, user: str, *decisions: str) -> Callable[..., None]:
    def act(cr: ChangeRequest) -> None:
        [row] = fake.records(f"number={cr.id}")
        password = fake.password if user == fake.username else fake.approvers[user]
        with httpx.Client(base_url=fake.url, auth=(user, password)) as client:
            for decision in decisions:
                path = f"/api/now/table/change_request/{row['sys_id']}"
                client.patch(path, json={"approval": decision}).raise_for_status()

    return act


@pytest.mark.parametrize("decision", ["approved", "rejected"])
def test_a_decision_taken_in_servicenow_resumes_or_cancels_the_paused_run(
    decision: str,
    servicenow: tuple[Stores, ServiceNowFake],
    environments: Callable[[], Path],
) -> None:
    runs = environments()
    stores, fake = servicenow
    person, errors = _when_waiting(_decide_in_servicenow(fake, "cab.approver", decision))
    outcome = deploy(DeploymentRequest(environment="prod", region="r1"))
    person.join()
    assert errors == []
    assert outcome.change_request is not None
    cr = stores.changes.get(outcome.change_request)
    last = cr.approvals[-1]
    assert (last.by, last.decision, last.source, last.automatic) == (
        "cab.approver",
        decision,
        "servicenow",
        False,
    )
    assert f"{decision} by cab.approver at" in render_change_request(cr)
    assert "(in servicenow)" in render_change_request(cr)
    if decision == "approved":
        assert cr.state is ChangeState.closed and runs.read_text().split() == [cr.id]
    else:
        assert cr.state is ChangeState.cancelled and not runs.exists()


def test_servicenows_api_user_is_no_approver_where_approvers_are_listed(
    servicenow: tuple[Stores, ServiceNowFake],
    environments: Callable[[], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Whoever holds changeflow's own ServiceNow credentials (a CI job) sets `approval`: the
    run refuses it (not a listed approver), logs why and times out; nothing deploys."""
    runs = environments()
    env_file = tmp_path / "environments.toml"
    text = env_file.read_text().replace("approval_timeout_s = 120", "approval_timeout_s = 3")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBYqgPQwhFwBd+T+dRtQRLNCyl/4ZfEYRACvp9ZwXtDL"
    env_file.write_text(
        text + "unsigned_approvals = true\n"
        f'approvers = [{{ identity = "cab.approver", public_key = "{key}" }}]\n'
    )
    stores, fake = servicenow
    person, errors = _when_waiting(_decide_in_servicenow(fake, fake.username, "approved"))
    outcome = deploy(DeploymentRequest(environment="prod", region="r1"))
    person.join()
    assert errors == []
    assert outcome.change_request is not None
    cr = stores.changes.get(outcome.change_request)
    assert cr.state is ChangeState.cancelled and not runs.exists()
    assert [(a.by, a.automatic) for a in cr.approvals] == [("changeflow", True)]  # the timeout
    assert cr.flow_run_id is not None
    refusal = f"decision in servicenow refused: not an approver: {fake.username}"
    assert refusal in _logs(UUID(cr.flow_run_id), refusal)


def _logs(run_id: UUID, wanted: str) -> str:
    """The run's log, once it holds `wanted` (logs reach the API in batches) or after 10 s."""
    deadline, text = time.monotonic() + 10, ""
    with get_client(sync_client=True) as client:
        while wanted not in text and time.monotonic() < deadline:
            found = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            text = "\n".join(log.message for log in found)
            time.sleep(0.2)
    return text
