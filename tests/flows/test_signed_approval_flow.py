"""Issue 13 through a paused deploy run on a real Prefect API: the resume form's approvals.

A POST to the API's resume endpoint with a typed name, or with a signature over other content,
leaves the run paused (its log says why) and records nothing; two approvers' signed approvals
(quorum 2) let it deploy. The stores are the in-memory ones, as in test_flow_logic.py.
"""

from __future__ import annotations

import contextvars
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.flow_runs import resume_flow_run
from stack_support import ship_to_prod

from blocks.memory import memory_stores
from blocks.ssh_signatures import sign
from blocks.stores import use_stores
from changeflow.approvals import cr_digest, statement_of
from changeflow.approvers import Approval
from changeflow.models import ChangeRequest, ChangeState
from changeflow.requests import DeploymentRequest
from cli.changes import cr_approve
from flows.deploy_flow import deploy


def _key(root: Path, who: str) -> Path:
    key = root / who
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _paused(run_id: UUID, after: str | None = None, timeout: float = 60) -> str:
    """Wait until the run is paused (on a pause other than `after`); its pause key."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            key = state.state_details.pause_key if state is not None else None
            if state is not None and state.is_paused() and key and key != after:
                return key
            time.sleep(0.2)
    raise TimeoutError("the run did not pause")


def _logs(run_id: UUID) -> str:
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # the run's logs travel in batches, a moment later
    with get_client(sync_client=True) as client:
        found = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return "\n".join(log.message for log in found)


def test_a_resume_through_the_api_takes_only_signed_approvals_up_to_the_quorum(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {who: _key(tmp_path, who) for who in ("alice", "bob")}
    public = {who: k.with_suffix(".pub").read_text().strip() for who, k in keys.items()}
    approvers = ",".join(
        f'{{ identity = "{who}@example.com", public_key = "{key}" }}' for who, key in public.items()
    )
    runs = tmp_path / "deploys.txt"
    record = "import sys; print('deployed', file=open(sys.argv[1], 'a'))"
    environments = tmp_path / "environments.toml"
    environments.write_text(
        f'[environments.prod]\nregions = ["r1"]\n'
        f"deploy = {json.dumps([sys.executable, '-c', record, str(runs)])}\n"
        f"approval_timeout_s = 300\napprovals_required = 2\napprovers = [{approvers}]\n"
    )
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
    seen: dict[str, object] = {}
    errors: list[BaseException] = []

    def people(changes: object) -> None:
        try:
            deadline = time.monotonic() + 120
            waiting: list[ChangeRequest] = []
            while not waiting and time.monotonic() < deadline:
                waiting = [
                    c
                    for c in stores.changes.list()
                    if c.state is ChangeState.authorize and c.flow_run_id
                ]
                time.sleep(0.1)
            cr = waiting[0]
            run_id = UUID(cr.flow_run_id or "")
            pause = _paused(run_id)
            # 1. a typed name, as the unauthenticated POST of the issue did
            resume_flow_run(run_id, run_input={"approved": True, "by": "cab-chair@example.com"})
            pause = _paused(run_id, after=pause)
            seen["after typed name"] = stores.changes.get(cr.id)
            # 2. alice's real signature, but over content other than this CR's
            other = Approval(
                by="alice@example.com", decision="approved", cr_digest="sha256:" + "0" * 64
            )
            forged = sign(keys["alice"], statement_of(cr.id, other))
            resume_flow_run(
                run_id,
                run_input={
                    "approved": True, "by": "alice@example.com",
                    "date": other.date.isoformat(), "signature": forged,
                },
            )  # fmt: skip
            pause = _paused(run_id, after=pause)
            seen["after stale signature"] = stores.changes.get(cr.id)
            # 3. alice signs this CR in the form: recorded, one more needed
            good = Approval(by="alice@example.com", decision="approved", cr_digest=cr_digest(cr))
            resume_flow_run(
                run_id,
                run_input={
                    "approved": True, "by": "alice@example.com", "date": good.date.isoformat(),
                    "signature": sign(keys["alice"], statement_of(cr.id, good)),
                },
            )  # fmt: skip
            _paused(run_id, after=pause)
            seen["after one"] = stores.changes.get(cr.id)
            seen["logs"] = _logs(run_id)
            # 4. bob, with the CLI: the quorum is met and the run resumes
            cr_approve(cr.id, by="bob@example.com", key=keys["bob"])
        except BaseException as exc:
            errors.append(exc)

    with use_stores(memory_stores()) as stores:
        ship_to_prod(["app/bin"], "p1", False)  # a failing unit test: not ready
        person = threading.Thread(target=contextvars.copy_context().run, args=(people, None))
        person.start()
        outcome = deploy(DeploymentRequest(environment="prod", region="r1"))
        person.join()
        assert errors == []
        typed = seen["after typed name"]
        assert isinstance(typed, ChangeRequest) and typed.approvals == []
        stale = seen["after stale signature"]
        assert isinstance(stale, ChangeRequest) and stale.approvals == []
        one = seen["after one"]
        assert isinstance(one, ChangeRequest) and one.state is ChangeState.authorize
        assert [a.by for a in one.approvals] == ["alice@example.com"]
        logs = str(seen["logs"])
        assert "decision refused: not an approver: cab-chair@example.com" in logs
        # the form names the content it showed: a signature over other content does not verify
        assert "decision refused: bad signature" in logs
        assert outcome.state == "closed", outcome.message
        final = stores.changes.get(outcome.change_request or "")
        assert [a.by for a in final.approvals] == ["alice@example.com", "bob@example.com"]
        assert runs.read_text().split() == ["deployed"]
