"""Issue 12, attacks 4-6 on the real stack: each makes `verify`'s chain check fail, naming the
CR and the rule. The signed history is built once on the SeaweedFS locker and a bare git
remote (conftest.py); each attack rewrites a fresh copy of the remote, the checkpoints staying
in the same locker bucket."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_support import Attack, Signed, branch_of, git, push_record

from changeflow.models import Approval, ChangeState, CloseCategory, utcnow
from tasks.audit import check_chain


def _problems(s: Signed, cr_id: str) -> list[str]:
    cr = s.changes.get(cr_id)
    return check_chain(s.stores.evidence, s.changes, cr, s.trust).broken


def test_a_clean_signed_history_verifies(attack: Attack) -> None:
    signed, cr = attack("passing")
    assert signed.changes.get(cr.id).state is ChangeState.closed
    found = check_chain(
        signed.stores.evidence, signed.changes, signed.changes.get(cr.id), signed.trust
    )
    assert found.broken == []
    assert found.checked >= 7  # three signed commits, three checkpoints, the decision


def test_attack_4_a_forged_approval_pushed_to_the_repo_is_named(attack: Attack) -> None:
    signed, cr = attack("failing")
    forged = cr.model_copy(
        update={
            "approvals": [*cr.approvals, Approval(by="mallory", decision="approved")],
        }
    )
    head = git(signed.remote, "rev-parse", branch_of(signed.remote, cr.id))
    push_record(signed.remote, forged, head, "approved")
    problems = _problems(signed, cr.id)
    assert any(
        p.startswith(f"{cr.id}: history.signed: commit ") and p.endswith("is not signed")
        for p in problems
    ), problems


def test_attack_5_a_force_pushed_history_is_named(attack: Attack) -> None:
    signed, cr = attack("passing")
    # the whole history replaced by one unsigned commit holding the same record
    orphan = push_record(signed.remote, signed.changes.get(cr.id), None, "history, rewritten")
    assert git(signed.remote, "rev-list", "--count", branch_of(signed.remote, cr.id)) == "1"
    problems = _problems(signed, cr.id)
    assert any(f"{cr.id}: history.signed: commit {orphan[:12]}" in p for p in problems)
    rewritten = [p for p in problems if p.startswith(f"{cr.id}: history.checkpoint: ")]
    assert len(rewritten) == 3 and all("not in the current history" in p for p in rewritten)


def test_attack_5b_a_reset_to_an_older_signed_commit_is_named(attack: Attack) -> None:
    """Every commit left is signed: only the checkpoints show the dropped ones."""
    signed, cr = attack("passing")
    ref = branch_of(signed.remote, cr.id)
    git(signed.remote, "update-ref", ref, f"{ref}~1")  # drops the closing
    problems = _problems(signed, cr.id)
    assert [p.split(" checkpoint of ")[0] for p in problems] == [f"{cr.id}: history.checkpoint:"], (
        problems
    )


def test_attack_6_an_emergency_closed_unreviewed_is_named(attack: Attack) -> None:
    signed, cr = attack("emergency")
    assert signed.changes.get(cr.id).state is ChangeState.review
    # closed successful with no retroactive approval, written with the deploy key itself
    read = signed.changes.get(cr.id)
    closed = read.model_copy(
        update={
            "state": ChangeState.closed,
            "close_category": CloseCategory.successful,
            "history": [
                *read.history,
                {"from": "review", "to": "closed", "by": "x", "date": utcnow().isoformat()},
            ],
        }
    )
    signed.changes.update(closed, "closed")
    problems = _problems(signed, cr.id)
    assert any(p.startswith(f"{cr.id}: emergency.reviewed: closed successful") for p in problems)


def test_a_commit_signed_by_a_key_the_trust_file_does_not_name_is_named(
    attack: Attack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from blocks.change_management import GitChangeManagement
    from blocks.signing import new_key

    signed, cr = attack("failing")
    # someone with push rights and a key of their own signs their commit
    (tmp_path / "own.pem").write_bytes(new_key())
    monkeypatch.setenv("CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE", str(tmp_path / "own.pem"))
    theirs = GitChangeManagement(remote_url=str(signed.remote), cache_dir=signed.changes.cache_dir)
    read = theirs.get(cr.id)
    theirs.update(read.model_copy(update={"description": "changed"}), "edited")
    problems = _problems(signed, cr.id)
    assert any(
        "history.signed" in p and "a key the trust file does not name" in p for p in problems
    ), problems


def test_the_verify_flow_fails_naming_the_cr_and_the_rule(attack: Attack, prefect_api: str) -> None:
    from blocks.stores import use_stores
    from changeflow.requests import AuditRequest
    from flows.audit_flow import verify

    signed, cr = attack("passing")
    with use_stores(signed.stores):
        assert verify(AuditRequest(change_request=cr.id)).broken == []
        ref = branch_of(signed.remote, cr.id)
        git(signed.remote, "update-ref", ref, f"{ref}~1")  # a force-push back
        report = verify(AuditRequest(change_request=cr.id))
    assert not report.ok
    assert [b.split(":")[:2] for b in report.broken] == [[cr.id, " history.checkpoint"]]
