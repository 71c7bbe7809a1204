"""The record around the deploy command, and what a rerun that finds it unfinished does.

Before the deploy command runs, its CR records that it starts; after the command and its
acceptance tests, the outcome. A rerun that finds the start without an outcome (the run died
in between) cannot know whether the command ran, so it never runs it again blindly: it waits
for a person, with the same pause and `changeflow cr approve|reject` as a CR that is not ready.
Approving runs the command again; rejecting (or nobody answering within the approval timeout)
closes the CR unsuccessful, its labels left where they were, so the next deploy files a new one.
"""

from __future__ import annotations

from enum import StrEnum

from changeflow.change import close, record_decision
from changeflow.models import Approval, ChangeRequest, ChangeState, CloseCategory, utcnow

__all__ = [
    "DEPLOY_FINISHED",
    "DEPLOY_STARTED",
    "IN_DOUBT",
    "RERUN_CONFIRMED",
    "DeployStatus",
    "decide",
    "deploy_finished",
    "deploy_started",
    "deploy_status",
    "in_doubt",
    "waiting_for_person",
]

# the values of a history entry's "deploy" key (a key of its own: `note`s are "event"s)
DEPLOY_STARTED = "deploy command started"
DEPLOY_FINISHED = "deploy command finished"
RERUN_CONFIRMED = "deploy command rerun confirmed"
IN_DOUBT = "the deploy command may have run: confirm"
"""Why a rerun waits for a person: the question the person answers."""


class DeployStatus(StrEnum):
    """Where a CR's deploy command stands, from its history."""

    pending = "pending"  # not started, or a person confirmed running it again
    in_doubt = "in_doubt"  # started, no outcome recorded
    finished = "finished"  # ran, outcome (and acceptance evidence) recorded


def _event(cr: ChangeRequest, event: str, **details: str) -> ChangeRequest:
    entry = {"deploy": event, "date": utcnow().isoformat(), **details}
    return cr.model_copy(update={"history": [*cr.history, entry]})


def deploy_started(cr: ChangeRequest) -> ChangeRequest:
    """The CR recording that its deploy command starts (written before the command runs)."""
    return _event(cr, DEPLOY_STARTED)


def deploy_finished(cr: ChangeRequest, returncode: int) -> ChangeRequest:
    """The CR recording its deploy command's outcome (written after it and its acceptance)."""
    return _event(cr, DEPLOY_FINISHED, exit=str(returncode))


def deploy_status(cr: ChangeRequest) -> DeployStatus:
    """Where the CR's deploy command stands: the latest of its deploy records decides."""
    latest = {
        DEPLOY_STARTED: DeployStatus.in_doubt,
        DEPLOY_FINISHED: DeployStatus.finished,
        RERUN_CONFIRMED: DeployStatus.pending,
    }
    for entry in reversed(cr.history):
        status = latest.get(entry.get("deploy", ""))
        if status is not None:
            return status
    return DeployStatus.pending


def in_doubt(cr: ChangeRequest) -> bool:
    """Whether the CR's deploy command may have run without its outcome being recorded."""
    return cr.state is ChangeState.implement and deploy_status(cr) is DeployStatus.in_doubt


def waiting_for_person(cr: ChangeRequest) -> bool:
    """Whether the deploy run of the CR pauses for a person: for its approval, or to confirm
    running the deploy command again."""
    return cr.state is ChangeState.authorize or in_doubt(cr)


def decide(cr: ChangeRequest, approval: Approval) -> ChangeRequest:
    """Record a person's decision on a CR that waits for one.

    On a CR in doubt: approving runs the deploy command again, rejecting closes the CR
    unsuccessful (its labels stay). Otherwise the CR's approval (`record_decision`).

    Raises:
        BadInput: when the CR is not waiting for a decision.
    """
    if not in_doubt(cr):
        return record_decision(cr, approval)
    why = f"{approval.decision} by {approval.by}" + (
        f": {approval.comment}" if approval.comment else ""
    )
    if approval.decision == "approved":
        return _event(cr, RERUN_CONFIRMED, by=approval.by, why=why)
    notes = f"{IN_DOUBT}; not run again ({why}); labels left where they were"
    return close(cr, CloseCategory.unsuccessful, by=approval.by, notes=notes)
