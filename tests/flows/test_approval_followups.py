"""Issue 13, the rest: `verify` re-checks approvals, emergencies carry through, reopened CRs.

The deploy and verify flows run on the in-memory stores against a real Prefect API (as in
test_flow_logic.py); signatures are real `ssh-keygen` ones.
"""

from __future__ import annotations

import contextvars
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from stack_support import ship_to_prod

from blocks.memory import memory_stores
from blocks.ssh_signatures import sign
from blocks.stores import use_stores
from changeflow.approvals import cr_digest, statement_of
from changeflow.approvers import Approval, ApprovalRule, Approver
from changeflow.change import change_event, note, transition
from changeflow.errors import BadInput
from changeflow.models import ChangeRequest, ChangeState, ChangeType, CloseCategory
from changeflow.requests import DeploymentRequest
from cli.changes import cr_approve, cr_reopen
from cli.lifecycle import verify_cmd
from flows.deploy_flow import deploy


@pytest.fixture
def environments(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[int], Path]:
    """Write prod/r1's environments file with an approval timeout; the deploy command appends
    each deployment's CR id to the file returned."""
    runs = tmp_path / "deploys.txt"

    def write(timeout_s: int = 300) -> Path:
        record = (
            "import os, sys; "
            "print(os.environ['CHANGEFLOW_CHANGE_REQUEST'], file=open(sys.argv[1], 'a'))"
        )
        command = [sys.executable, "-c", record, str(runs)]
        environments = tmp_path / "environments.toml"
        environments.write_text(
            f'[environments.prod]\nregions = ["r1"]\ndeploy = {json.dumps(command)}\n'
            f"approval_timeout_s = {timeout_s}\n"
        )
        monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
        return runs

    return write


def _deployed(runs: Path) -> list[str]:
    return runs.read_text().split() if runs.exists() else []


def _key(root: Path, who: str) -> Path:
    key = root / who
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _verify(cr_id: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """`changeflow verify --change-request ID`: its exit code and its output lines."""
    try:
        verify_cmd(change_request=cr_id)
        code = 0
    except typer.Exit as exit_:
        code = exit_.exit_code
    return code, capsys.readouterr().out.strip().splitlines()


def test_verify_checks_every_approvals_signature_duties_and_quorum(
    environments: Callable[[int], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environments(300)
    keys = {who: _key(tmp_path, who) for who in ("alice", "bob", "carol")}
    rule = ApprovalRule(
        approvers=[
            Approver(identity=f"{w}@example.com", public_key=k.with_suffix(".pub").read_text())
            for w, k in keys.items()
        ],
        approvals_required=2,
    )
    with use_stores(memory_stores()) as stores:
        ship_to_prod(["app/bin"], "p1")
        outcome = deploy(DeploymentRequest(environment="prod", region="r1"))
        deployed = stores.changes.get(outcome.change_request or "")
        assert _verify(deployed.id, capsys)[0] == 0  # auto-approved: nothing to object to
        # a record rewritten as if people had approved it under prod's rule
        base = deployed.model_copy(
            update={"approval_rule": rule, "assigned_to": "bob@example.com", "approvals": []}
        )

        def signed(who: str) -> Approval:
            approval = Approval(
                by=f"{who}@example.com", decision="approved", cr_digest=cr_digest(base)
            )
            signature = sign(keys[who], statement_of(base.id, approval))
            return approval.model_copy(update={"signature": signature})

        typed = Approval(by="cab-chair@example.com", decision="approved")
        forged = [typed, signed("bob"), signed("alice"), signed("alice")]
        stores.changes.update(base.model_copy(update={"approvals": forged}), "rewritten")
        code, lines = _verify(base.id, capsys)
        assert code == 1, lines
        problems = [line.removeprefix("does not verify: ") for line in lines[:-1]]
        # the refused decisions count for nobody: alice's one valid approval is 1 of 2
        assert problems == [
            f"{base.id}: approval 1 by cab-chair@example.com: not an approver: "
            "cab-chair@example.com is not listed for prod",
            f"{base.id}: approval 2 by bob@example.com: separation of duties: bob@example.com "
            f"is the promotion's assignee and may not decide {base.id}",
            f"{base.id}: approval 4 by alice@example.com: quorum: alice@example.com has "
            # bob's refused approval does not count: one more is needed, not none (issue 13)
            f"already approved {base.id}; 1 more from other approvers needed",
            f"{base.id}: quorum not met: approved by alice@example.com (1 of 2; 1 more needed)",
        ]
        # a signature over other content (a stale digest) does not verify either
        stale = signed("carol").model_copy(update={"cr_digest": "sha256:" + "0" * 64})
        stores.changes.update(base.model_copy(update={"approvals": [stale]}), "rewritten")
        code, lines = _verify(base.id, capsys)
        assert code == 1 and lines[0].startswith(
            f"does not verify: {base.id}: approval 1 by carol@example.com: stale approval"
        ), lines
        # two listed people, neither the assignee, each with their own key: it verifies
        fair = [signed("alice"), signed("carol")]
        stores.changes.update(base.model_copy(update={"approvals": fair}), "rewritten")
        code, lines = _verify(base.id, capsys)
        assert code == 0, lines


def test_an_emergency_promotion_deploys_as_an_emergency_change(
    environments: Callable[[int], Path],
) -> None:
    runs = environments(300)
    with use_stores(memory_stores()) as stores:
        ship_to_prod(["app/bin"], "p1", False, emergency=True)  # failing evidence: not ready
        outcome = deploy(DeploymentRequest(environment="prod", region="r1"))  # no second flag
        cr = stores.changes.get(outcome.change_request or "")
        assert cr.type is ChangeType.emergency and not cr.deployment_ready
        assert cr.state is ChangeState.review  # deployed; waiting for its approvals
        assert _deployed(runs) == [cr.id]


def test_an_emergency_entering_review_is_announced() -> None:
    rule = ApprovalRule(approvals_required=2)
    filed = ChangeRequest(
        id="CHG0000001", environment="prod", region="r1", deployment_run_id="d",
        type=ChangeType.emergency, approval_rule=rule,
    )  # fmt: skip
    cr = filed
    for state in (ChangeState.assess, ChangeState.authorize, ChangeState.scheduled):
        cr = transition(cr, state, by="changeflow", why="t")
    implementing = transition(cr, ChangeState.implement, by="changeflow", why="t")
    review = transition(implementing, ChangeState.review, by="changeflow", why="deployed")
    event = change_event(implementing, review)
    assert event == ("change_request.emergency_review", {"needed": 2})
    assert change_event(review, note(review, "still waiting")) is None  # announced once
    standard = implementing.model_copy(update={"type": ChangeType.standard})
    assert change_event(standard, transition(standard, ChangeState.review, by="c", why="t")) is None


def test_deploy_carries_on_with_a_cr_reopened_after_its_approval_timed_out(
    environments: Callable[[int], Path],
) -> None:
    runs = environments(2)
    with use_stores(memory_stores()) as stores:
        ship_to_prod(["app/bin"], "p1", False)  # not ready: waits for a person
        timed_out = deploy(DeploymentRequest(environment="prod", region="r1"))
        cancelled = stores.changes.get(timed_out.change_request or "")
        assert cancelled.state is ChangeState.cancelled and _deployed(runs) == []
        # a cancelled CR cannot be carried on until it is re-opened
        again = DeploymentRequest(environment="prod", region="r1", change_request=cancelled.id)
        with pytest.raises(BadInput, match="nothing left to deploy"):
            deploy(again)
        assert _deployed(runs) == [] and stores.changes.get(cancelled.id) == cancelled
        cr_reopen(cancelled.id, by="rm")
        environments(300)
        errors: list[BaseException] = []

        def person() -> None:
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    cr = stores.changes.get(cancelled.id)
                    if (
                        cr.state is ChangeState.authorize
                        and cr.flow_run_id != cancelled.flow_run_id
                    ):
                        cr_approve(cr.id, by="carol", comment="looked at it again")
                        return
                    time.sleep(0.1)
                raise TimeoutError("the reopened CR did not wait for approval")
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=contextvars.copy_context().run, args=(person,))
        thread.start()
        outcome = deploy(again)
        thread.join()
        assert errors == []
        assert outcome.change_request == cancelled.id and outcome.state == "closed", outcome
        done = stores.changes.get(cancelled.id)
        assert done.close_category is CloseCategory.successful_issues
        assert [a.by for a in done.approvals] == ["changeflow", "carol"]
        assert _deployed(runs) == [cancelled.id]
        assert len(stores.changes.list()) == 1
