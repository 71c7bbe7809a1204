"""The chain an auditor checks behind a CR: its signed history, checkpoints and emergency review.

Every rule has a name, and every problem is one line `<CR>: <rule>: <why>`:

- `history.signed`: each commit that changed the CR's record carries an SSH signature by a key
  the trust file lets sign `cr-history`, made inside that key's window (the commit date is the
  signer's word, as a statement's date is);
- `history.transition`: each commit only appends to the CR's recorded history, and every
  state change in it is one the lifecycle allows (`changeflow.change.TRANSITIONS`);
- `history.checkpoint`: every signed checkpoint of the CR in the locker names a commit the
  current history still contains, so a force-push that rewrote or dropped commits is named;
- `emergency.reviewed`: an emergency closed successful met its quorum of retroactive approvals.

The signatures are checked by the adapter (`ssh-keygen`, DSSE); this module judges what they
are worth under the trust file. A trust file that names no `cr-history` key does not judge the
history (as records are not judged without a trust file).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from changeflow.approvals import approvals_needed, quorum_line
from changeflow.attestations import STATEMENT_V1
from changeflow.change import TRANSITIONS
from changeflow.evidence_trust import Opened
from changeflow.models import ChangeRequest, ChangeState, ChangeType, CloseCategory
from changeflow.trust import TrustPolicy

__all__ = [
    "CHECKPOINT_V1",
    "CR_HISTORY",
    "Checkpoint",
    "HistoryCommit",
    "checkpoint_of",
    "checkpoint_problems",
    "checkpoint_statement",
    "emergency_problems",
    "history_problems",
    "judges_history",
]

CR_HISTORY = "cr-history"
"""What a key signs when it signs a CR's commits and checkpoints (the deploy key)."""

CHECKPOINT_V1 = "https://changeflow.dev/checkpoint/v1"
"""The predicate of a signed checkpoint: a CR's head commit after one write."""

# git's %G? letters: G good by an allowed signer; anything else is not a trusted signature
_STATUS = {
    "B": "has a bad signature",
    "U": "is signed by a key the trust file does not name",
    "X": "is signed with an expired signature",
    "Y": "is signed by an expired key",
    "R": "is signed by a revoked key",
    "E": "has a signature that cannot be checked",
    "N": "is not signed",
}
# the lifecycle's transitions, plus reopening a cancelled CR (`changeflow.approvals.reopen`)
_REOPEN = (ChangeState.cancelled.value, ChangeState.authorize.value)


class HistoryCommit(BaseModel):
    """One commit that changed a CR's record, as the adapter read it.

    Attributes:
        commit: its sha.
        date: its committer date (inside the signed commit object).
        status: git's signature letter (`%G?`): `G` is a good signature by an allowed signer.
        signer: the keyid of the trust file's key that signed it, when `G`.
        record: the CR's record at this commit; None when it is missing or unreadable.
    """

    commit: str
    date: datetime
    status: str
    signer: str | None = None
    record: ChangeRequest | None = None


class Checkpoint(BaseModel):
    """A checkpoint as the adapter opened it: which commit, when, and who signed it."""

    change_request: str
    commit: str
    date: datetime
    keyids: set[str]


def judges_history(trust: TrustPolicy | None) -> bool:
    """Whether the trust file judges CR history: it names a key that signs `cr-history`."""
    return trust is not None and bool(trust.signers_of(CR_HISTORY))


def checkpoint_statement(
    change_request: str, commit: str, repository: str, when: datetime
) -> dict[str, Any]:
    """The in-toto statement of a checkpoint: the CR's head commit after a write."""
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": f"{repository}#{change_request}", "digest": {"gitCommit": commit}}],
        "predicateType": CHECKPOINT_V1,
        "predicate": {
            "changeRequest": change_request,
            "commit": commit,
            "checkpointedOn": when.isoformat().replace("+00:00", "Z"),
        },
    }


def checkpoint_of(opened: Opened) -> Checkpoint | str:
    """The checkpoint an opened envelope carries, or why it carries none."""
    if opened.problem:
        return opened.problem
    statement = opened.statement
    predicate = statement.get("predicate") or {}
    if statement.get("predicateType") != CHECKPOINT_V1 or not isinstance(predicate, dict):
        return f"is not a checkpoint ({statement.get('predicateType')!r})"
    try:
        when = datetime.fromisoformat(str(predicate.get("checkpointedOn")))
        return Checkpoint(
            change_request=str(predicate.get("changeRequest")),
            commit=str(predicate.get("commit")),
            date=when,
            keyids=opened.keyids,
        )
    except ValueError as exc:
        return f"is malformed: {' '.join(str(exc).split())[:200]}"


def history_problems(
    cr_id: str, commits: list[HistoryCommit], trust: TrustPolicy | None
) -> list[str]:
    """What is wrong with a CR's history (`commits` newest first, as `git log` lists them)."""
    if not judges_history(trust) or trust is None:
        return []
    problems: list[str] = []
    if not commits:
        return [f"{cr_id}: history.signed: the change-management repo has no history of it"]
    for c in commits:
        if c.status != "G" or c.signer is None:
            status = _STATUS.get(c.status, f"has signature status {c.status!r}")
            problems.append(f"{cr_id}: history.signed: commit {c.commit[:12]} {status}")
        elif judged := trust.judge(CR_HISTORY, {c.signer}, c.date):
            problems.append(f"{cr_id}: history.signed: commit {c.commit[:12]} is {judged}")
    return problems + _transition_problems(cr_id, list(reversed(commits)))


def _transition_problems(cr_id: str, oldest_first: list[HistoryCommit]) -> list[str]:
    problems: list[str] = []
    seen: list[dict[str, str]] = []
    state = ChangeState.new.value
    for c in oldest_first:
        where = f"{cr_id}: history.transition: commit {c.commit[:12]}"
        if c.record is None:
            problems.append(f"{where} holds no readable record of the CR")
            continue
        if c.record.history[: len(seen)] != seen:
            problems.append(f"{where} rewrites the history the CR recorded before")
        for entry in c.record.history[len(seen) :]:
            if "to" not in entry:
                continue  # a note, not a transition
            moved = (entry.get("from", ""), entry["to"])
            try:
                allowed = {s.value for s in TRANSITIONS[ChangeState(moved[0])]}
            except ValueError:
                allowed = set()
            if moved[0] != state or (moved[1] not in allowed and moved != _REOPEN):
                problems.append(f"{where} moves it {moved[0]} -> {moved[1]} (it was {state})")
            state = moved[1]
        if c.record.state.value != state:
            problems.append(f"{where} says {c.record.state.value}, its history says {state}")
            state = c.record.state.value
        seen = list(c.record.history)
    return problems


def checkpoint_problems(
    cr_id: str,
    checkpoints: list[Checkpoint | str],
    head: str | None,
    contains: Callable[[str, str], bool],
    trust: TrustPolicy | None,
) -> list[str]:
    """What the CR's checkpoints say about the current history (`contains(commit, head)` tells
    whether `commit` is an ancestor of, or is, `head`)."""
    if not judges_history(trust) or trust is None:
        return []
    if not checkpoints:
        return [f"{cr_id}: history.checkpoint: the locker holds no signed checkpoint of it"]
    problems: list[str] = []
    for found in checkpoints:
        if isinstance(found, str):
            problems.append(f"{cr_id}: history.checkpoint: a checkpoint {found}")
            continue
        where = f"{cr_id}: history.checkpoint: checkpoint of {found.commit[:12]}"
        if found.change_request != cr_id:
            problems.append(f"{where} is about {found.change_request}")
        elif why := trust.judge(CR_HISTORY, found.keyids, found.date):
            problems.append(f"{where} is {why}")
        elif head is None or not contains(found.commit, head):
            problems.append(
                f"{where} ({found.date:%Y-%m-%d %H:%M:%S}) is not in the current history: "
                "the history was rewritten after it"
            )
    return problems


def emergency_problems(cr: ChangeRequest) -> list[str]:
    """An emergency closed successful must have met its quorum of retroactive approvals."""
    successful = cr.close_category in (CloseCategory.successful, CloseCategory.successful_issues)
    if cr.type is not ChangeType.emergency or cr.state is not ChangeState.closed:
        return []
    if successful and approvals_needed(cr):
        category = cr.close_category.value if cr.close_category else ""
        return [
            f"{cr.id}: emergency.reviewed: closed {category} without its retroactive "
            f"approvals ({quorum_line(cr)})"
        ]
    return []
