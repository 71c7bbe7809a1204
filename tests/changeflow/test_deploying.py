"""The CR's revision and compare-and-swap rule, and the record around the deploy command."""

from __future__ import annotations

import pytest

from changeflow.change import note, record_decision, transition
from changeflow.deploying import (
    IN_DOUBT,
    DeployStatus,
    decide,
    deploy_finished,
    deploy_started,
    deploy_status,
    in_doubt,
    waiting_for_person,
)
from changeflow.errors import BadInput, NotReady, StaleChange
from changeflow.models import Approval, ChangeRequest, ChangeState, CloseCategory
from changeflow.revisions import check_revision, revision


def _cr(state: ChangeState = ChangeState.authorize) -> ChangeRequest:
    cr = ChangeRequest(id="CHG0000001", environment="prod", region="r1", deployment_run_id="d")
    for step in (ChangeState.assess, ChangeState.authorize, ChangeState.scheduled):
        if cr.state is state:
            break
        cr = transition(cr, step, by="t", why="next")
    if state is ChangeState.implement:
        cr = transition(cr, ChangeState.implement, by="t", why="deploying")
    return cr


def test_a_revision_is_the_digest_of_the_content() -> None:
    cr = _cr()
    assert revision(cr) == revision(cr.model_copy(deep=True))
    assert revision(note(cr, "x")) != revision(cr)
    assert revision(cr).startswith("sha256:")


def test_a_write_is_checked_against_the_revision_read() -> None:
    read = _cr()
    approved = record_decision(read, Approval(by="alice", decision="approved"))
    rejected = record_decision(read, Approval(by="bob", decision="rejected"))
    assert check_revision(read, approved, revision(read))  # nothing changed meanwhile
    assert check_revision(read, approved, None)  # no expectation: as before
    assert not check_revision(approved, approved, revision(read))  # already written: no write
    with pytest.raises(StaleChange, match="it is scheduled, approved by alice") as info:
        check_revision(approved, rejected, revision(read))
    assert isinstance(info.value, NotReady)  # exit 1 at the CLI, never retried by a task
    assert "\n" not in str(info.value)


def test_the_deploy_record_says_whether_the_command_may_have_run() -> None:
    cr = _cr(ChangeState.implement)
    assert deploy_status(cr) is DeployStatus.pending and not in_doubt(cr)
    started = deploy_started(cr)
    assert deploy_status(started) is DeployStatus.in_doubt and in_doubt(started)
    assert waiting_for_person(started) and not waiting_for_person(cr)
    finished = deploy_finished(started, 0)
    assert deploy_status(finished) is DeployStatus.finished and not in_doubt(finished)
    assert finished.history[-1]["exit"] == "0"
    # started again after a person confirmed: in doubt again until the outcome is written
    again = deploy_started(decide(started, Approval(by="carol", decision="approved")))
    assert in_doubt(again)


def test_a_person_confirms_or_refuses_running_it_again() -> None:
    started = deploy_started(_cr(ChangeState.implement))
    confirmed = decide(started, Approval(by="carol", decision="approved", comment="checked"))
    assert confirmed.state is ChangeState.implement and confirmed.approvals == []
    assert deploy_status(confirmed) is DeployStatus.pending
    assert confirmed.history[-1]["why"] == "approved by carol: checked"
    refused = decide(started, Approval(by="carol", decision="rejected"))
    assert refused.state is ChangeState.closed
    assert refused.close_category is CloseCategory.unsuccessful
    assert IN_DOUBT in refused.close_notes and "rejected by carol" in refused.close_notes
    # nothing to confirm: a CR that is not in doubt is decided as before
    with pytest.raises(BadInput, match="not waiting for approval"):
        decide(deploy_finished(started, 0), Approval(by="carol", decision="approved"))
    assert decide(_cr(), Approval(by="al", decision="approved")).state is ChangeState.scheduled
