"""Approvals as a change board signs them: statement, rule, separation of duties, quorum."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from changeflow.approvals import (
    approval_problems,
    approvals_needed,
    check_approval,
    cr_digest,
    quorum_line,
    reopen,
    statement_of,
    text_to_sign,
)
from changeflow.approvers import Approval, ApprovalRule, Approver, normalize_signature
from changeflow.authors import CommitAuthor
from changeflow.change import cancel, close, record_decision, transition
from changeflow.errors import BadInput
from changeflow.models import ChangeRequest, ChangeState, ChangeType, CloseCategory
from changeflow.project import parse_environments

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBYqgPQwhFwBd+T+dRtQRLNCyl/4ZfEYRACvp9ZwXtDL"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAZ1F8bLnq9wX7m8M8V4Q4X+u7Qj9r1c2k7bYk6F0m6N"
ALICE = Approver(identity="alice@example.com", public_key=KEY_A)
BOB = Approver(identity="bob@example.com", public_key=KEY_B)
TWO = ApprovalRule(approvers=[ALICE, BOB], approvals_required=2)


def fake_verify(approver: Approver, text: str, signature: str) -> bool:
    """A stand-in for ssh-keygen in these pure tests: 'sig:<identity>:<text>'."""
    return signature == f"sig:{approver.identity}:{text}"


def waiting(rule: ApprovalRule | None = TWO, **fields: object) -> ChangeRequest:
    cr = ChangeRequest(
        id="CHG0000001",
        environment="prod",
        region="us",
        deployment_run_id="d",
        assigned_to="Carol <carol@example.com>",
        approval_rule=rule,
        **fields,  # type: ignore[arg-type]
    )
    cr = transition(cr, ChangeState.assess, by="changeflow", why="filed")
    return transition(cr, ChangeState.authorize, by="changeflow", why="assessed")


def signed(cr: ChangeRequest, who: str, decision: str = "approved", **over: str) -> Approval:
    approval = Approval(
        by=who,
        decision=decision,  # type: ignore[arg-type]
        date=datetime(2025, 1, 1, tzinfo=UTC),
        cr_digest=over.get("cr_digest", cr_digest(cr)),
        signature="placeholder",
    )
    text = statement_of(over.get("cr_id", cr.id), approval)
    return approval.model_copy(update={"signature": f"sig:{over.get('key_of', who)}:{text}"})


def refused(cr: ChangeRequest, approval: Approval, rule: ApprovalRule = TWO) -> str:
    with pytest.raises(BadInput) as caught:
        check_approval(cr, approval, rule, fake_verify)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_the_text_to_sign_names_cr_content_decision_comment_time_and_identity() -> None:
    when = datetime(2025, 1, 1, tzinfo=UTC)
    text = text_to_sign("CHG0000001", "sha256:" + "0" * 64, "approved", "ok", when, "a@x")
    assert text == (
        '{"change_request":"CHG0000001","comment":"ok","cr_digest":"sha256:' + "0" * 64 + '",'
        '"date":"2025-01-01T00:00:00+00:00","decision":"approved","identity":"a@x",'
        '"namespace":"changeflow-approval"}'
    )


def test_the_digest_ignores_bookkeeping_but_not_content() -> None:
    cr = waiting()
    moved = record_decision(cr, signed(cr, "alice@example.com"))
    assert cr_digest(moved) == cr_digest(cr)
    assert cr_digest(cr.model_copy(update={"delta": ["x"]})) != cr_digest(cr)


def test_a_quorum_of_two_takes_two_distinct_approvers() -> None:
    cr = waiting()
    first = signed(cr, "alice@example.com")
    check_approval(cr, first, TWO, fake_verify)
    cr = record_decision(cr, first)
    assert cr.state is ChangeState.authorize and approvals_needed(cr) == 1
    assert "1 more needed" in quorum_line(cr) and "alice@example.com" in quorum_line(cr)
    assert refused(cr, signed(cr, "alice@example.com")).startswith("quorum: ")
    second = signed(cr, "bob@example.com")
    check_approval(cr, second, TWO, fake_verify)
    cr = record_decision(cr, second)
    assert cr.state is ChangeState.scheduled and approvals_needed(cr) == 0


def test_refusals_name_their_rule() -> None:
    cr = waiting()
    assert refused(cr, signed(cr, "mallory@example.com")).startswith("not an approver: ")
    unsigned = Approval(by="alice@example.com", decision="approved")
    assert refused(cr, unsigned).startswith("signature required: ")
    stale = signed(cr, "alice@example.com", cr_digest="sha256:" + "1" * 64)
    assert refused(cr, stale).startswith("stale approval: ")
    other_cr = signed(cr, "alice@example.com", cr_id="CHG0000002")
    assert refused(cr, other_cr).startswith("bad signature: ")
    wrong_key = signed(cr, "alice@example.com", key_of="bob@example.com")
    assert refused(cr, wrong_key).startswith("bad signature: ")


def test_separation_of_duties_by_assignee_author_or_key() -> None:
    rule = ApprovalRule(
        approvers=[ALICE, BOB, Approver(identity="carol@example.com", public_key=_key(3))]
    )
    cr = waiting(rule)
    assert refused(cr, signed(cr, "carol@example.com"), rule).startswith("separation of duties: ")
    by_name = waiting(rule, delta_authors=[CommitAuthor(identity="Bob <BOB@example.com>")])
    message = refused(by_name, signed(by_name, "bob@example.com"), rule)
    assert message.startswith("separation of duties: ") and "written by them" in message
    by_key = waiting(rule, delta_authors=[CommitAuthor(identity="A <a@elsewhere>", key=KEY_A)])
    assert refused(by_key, signed(by_key, "alice@example.com"), rule).startswith("separation")


def test_unsigned_approvals_only_where_the_environment_allows_them() -> None:
    open_rule = ApprovalRule()
    assert open_rule.unsigned_approvals is True
    cr = waiting(None)
    check_approval(cr, Approval(by="anyone", decision="approved"), open_rule, fake_verify)
    assert TWO.signed_required
    allowed = ApprovalRule(approvers=[ALICE], unsigned_approvals=True)
    check_approval(cr, Approval(by="alice@example.com", decision="approved"), allowed, fake_verify)


def test_an_emergency_does_not_close_successful_before_its_quorum() -> None:
    cr = waiting().model_copy(update={"type": ChangeType.emergency})
    cr = transition(cr, ChangeState.scheduled, by="changeflow", why="emergency")
    cr = transition(cr, ChangeState.implement, by="changeflow", why="deploying")
    cr = transition(cr, ChangeState.review, by="changeflow", why="emergency deployed")
    with pytest.raises(BadInput, match=r"^emergency review: .*2 more needed"):
        close(cr, CloseCategory.successful, by="x")
    cr = record_decision(cr, signed(cr, "alice@example.com"))
    with pytest.raises(BadInput, match=r"^emergency review: .*1 more needed"):
        close(cr, CloseCategory.successful, by="x")
    cr = record_decision(cr, signed(cr, "bob@example.com"))
    assert close(cr, CloseCategory.successful, by="x").state is ChangeState.closed
    assert approval_problems(cr, fake_verify) == []


def test_a_cancelled_cr_reopens_for_a_fresh_round() -> None:
    cr = record_decision(waiting(), signed(waiting(), "alice@example.com"))
    timed_out = Approval(by="changeflow", decision="rejected", automatic=True, comment="timeout")
    cr = record_decision(cr, timed_out)
    assert cr.state is ChangeState.cancelled
    again = reopen(cr, by="alice@example.com")
    assert again.state is ChangeState.authorize and again.close_category is None
    assert approvals_needed(again) == 2
    with pytest.raises(BadInput, match="only a cancelled CR"):
        reopen(again, by="x")
    window = cancel(waiting(), by="changeflow", why="outside its window")
    assert reopen(window, by="x").state is ChangeState.authorize


def test_verify_finds_a_forged_approval_and_a_missed_quorum() -> None:
    cr = waiting()
    forged = Approval(by="alice@example.com", decision="approved", cr_digest=cr_digest(cr))
    cr = cr.model_copy(update={"approvals": [forged], "state": ChangeState.closed})
    problems = approval_problems(cr, fake_verify)
    assert any("signature required" in p for p in problems)
    assert any("quorum not met" in p for p in problems)


def test_the_environments_file_sets_the_rule() -> None:
    text = f"""
[environments.prod]
regions = ["us"]
approvals_required = 2
approvers = [
  {{ identity = "alice@example.com", public_key = "{KEY_A} alice" }},
  {{ identity = "bob@example.com", public_key = "{KEY_B}" }},
]
[environments.dev]
regions = ["us"]
"""
    envs = parse_environments(text)
    assert envs.get("prod").approval_rule == TWO
    assert envs.get("dev").approval_rule.unsigned_approvals is True
    too_many = text.replace("approvals_required = 2", "approvals_required = 3")
    with pytest.raises(BadInput, match="approvals_required is 3 but only 2"):
        parse_environments(too_many)
    with pytest.raises(BadInput, match="ssh-ed25519"):
        parse_environments(text.replace(KEY_B, "ssh-rsa AAAA"))
    with pytest.raises(BadInput, match="not an approver identity"):
        parse_environments(text.replace("bob@example.com", "bob,*"))


def test_a_pasted_signature_is_rewrapped() -> None:
    armored = "-----BEGIN SSH SIGNATURE-----\n" + "QUJD" * 30 + "\n-----END SSH SIGNATURE-----\n"
    one_line = " ".join(armored.split("\n"))
    assert normalize_signature(one_line) == normalize_signature(armored)
    with pytest.raises(ValueError, match="not an SSH signature"):
        normalize_signature("bob")


def _key(n: int) -> str:
    import base64

    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([n]) * 32
    return "ssh-ed25519 " + base64.b64encode(blob).decode()
