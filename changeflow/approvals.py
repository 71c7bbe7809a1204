"""Approvals a change board signs off on: the signed statement, who may sign, how many it takes.

A person approves (or rejects) a CR by signing a statement: the CR's id, the digest of the CR
content they read (`cr_digest`), the decision, the comment, the time and their identity
(`text_to_sign`). The signature is checked against the environment's approvers (`ApprovalRule`);
a signature over another CR or over content that changed since is refused, so an approval is
never replayed onto a changed CR. Separation of duties keeps the promotion's assignee and the
delta's commit authors from approving, and the quorum counts distinct approvers. Each refusal
is one line that starts with the rule it breaks.

Checking a signature is I/O (`ssh-keygen`), so the callers hand it in as `Verify`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from changeflow.approvers import APPROVAL_NAMESPACE, Approval, ApprovalRule, Approver
from changeflow.canonical import canonical_json, digest
from changeflow.errors import BadInput
from changeflow.models import ChangeRequest, ChangeState, ChangeType, CloseCategory, utcnow

__all__ = [
    "BOOKKEEPING",
    "Verify",
    "approval_problems",
    "approvals_given",
    "approvals_needed",
    "check_approval",
    "check_emergency_close",
    "cr_digest",
    "quorum_line",
    "reopen",
    "rule_of",
    "signing_instructions",
    "statement_of",
    "text_to_sign",
]

Verify = Callable[[Approver, str, str], bool]
"""Whether `signature` (armored SSH signature) over `text` verifies for the approver's key."""

BOOKKEEPING = frozenset(
    {
        "state",
        "history",
        "flow_run_id",
        "approvals",
        "close_category",
        "close_notes",
        "acceptance_evidence",
        # the worker's configuration, recorded again when the command runs (after approval)
        "deploy_command",
        "environments_sha256",
    }
)
"""What a CR records about its progress: not part of the content a decision is taken on."""

_REOPENED_AT = "reopened_at_approval"
_EMAIL_RE = re.compile(r"<([^<>\s]+)>")


def cr_digest(cr: ChangeRequest) -> str:
    """The digest of what a decision on the CR rests on: everything but its bookkeeping."""
    body = cr.model_dump(mode="json", exclude_none=True, exclude=set(BOOKKEEPING))
    return digest(canonical_json(body))


def text_to_sign(
    cr_id: str, content: str, decision: str, comment: str, date: datetime, identity: str
) -> str:
    """The exact text an approver signs: canonical JSON of the statement, on one line."""
    statement = {
        "change_request": cr_id,
        "comment": comment,
        "cr_digest": content,
        "date": date.isoformat(),
        "decision": decision,
        "identity": identity,
        "namespace": APPROVAL_NAMESPACE,
    }
    return canonical_json(statement).decode("utf-8")


def statement_of(cr_id: str, approval: Approval) -> str:
    """The text an approval's signature is over."""
    return text_to_sign(
        cr_id,
        approval.cr_digest or "",
        approval.decision,
        approval.comment,
        approval.date,
        approval.by,
    )


def rule_of(cr: ChangeRequest) -> ApprovalRule:
    """The approval rule a CR was filed under (an older CR: one approval, unsigned)."""
    return cr.approval_rule or ApprovalRule()


def _round_start(cr: ChangeRequest) -> int:
    """Where the current round starts: after the latest rejection or reopening."""
    reopened = [int(e[_REOPENED_AT]) for e in cr.history if e.get(_REOPENED_AT, "").isdigit()]
    start = max(reopened, default=0)
    for i, approval in enumerate(cr.approvals):
        if approval.decision == "rejected":
            start = max(start, i + 1)
    return start


def _round(cr: ChangeRequest) -> list[Approval]:
    """The decisions of the current round: those after the latest rejection or reopening."""
    return cr.approvals[_round_start(cr) :]


def approvals_given(cr: ChangeRequest) -> list[str]:
    """The distinct people whose approval counts in the current round, in order.

    An approval counts once per person (`alice@example.com`, `Alice <alice@example.com>` and
    `ALICE@example.com` are one), and not at all when the CR's rule refuses it as it stands:
    an identity not listed, or one that separation of duties excludes (the assignee, a commit
    author of the delta), however it came to be recorded.
    """
    rule, seen, given = rule_of(cr), set[str](), list[str]()
    for approval in _round(cr):
        if approval.decision != "approved" or approval.automatic:
            continue
        approver = rule.approver(approval.by)
        if rule.approvers and approver is None:
            continue
        if _duty_conflict(cr, approval.by, approver) is not None:
            continue
        person = _person(approval.by, approver)
        if person not in seen:
            seen.add(person)
            given.append(approval.by)
    return given


def approvals_needed(cr: ChangeRequest) -> int:
    """How many more distinct approvers the CR's quorum takes (0 when met)."""
    if any(a.automatic and a.decision == "approved" for a in _round(cr)):
        return 0  # its evidence approved it: the policy, not a person, decided
    return max(0, rule_of(cr).approvals_required - len(approvals_given(cr)))


def quorum_line(cr: ChangeRequest) -> str:
    """Who approved and how many more are needed, for the CR's rendering and the logs."""
    given = approvals_given(cr)
    needed = approvals_needed(cr)
    who = ", ".join(given) if given else "nobody yet"
    more = f"{needed} more needed" if needed else "quorum met"
    return f"approved by {who} ({len(given)} of {rule_of(cr).approvals_required}; {more})"


def _identities(text: str) -> set[str]:
    """The forms a person is named in: the whole text, and the name and the email of a
    `Name <email>`."""
    found = {text.strip().lower()}
    emails = _EMAIL_RE.findall(text)
    found.update(m.lower() for m in emails)
    if emails:
        found.add(text.split("<", 1)[0].strip().lower())
    return {f for f in found if f}


def _person(by: str, approver: Approver | None) -> str:
    """Who an approval is by, as one string: the listed identity, else the email, else the name."""
    if approver is not None:
        return approver.identity.lower()
    emails = _EMAIL_RE.findall(by)
    return emails[0].lower() if emails else by.strip().lower()


def _duty_conflict(cr: ChangeRequest, by: str, approver: Approver | None) -> str | None:
    """Why separation of duties excludes `by` from deciding the CR, or None."""
    who = _identities(by)
    if cr.assigned_to and who & _identities(cr.assigned_to):
        return f"separation of duties: {by} is the promotion's assignee and may not decide {cr.id}"
    for author in cr.delta_authors:
        by_key = approver is not None and author.key == approver.public_key
        if by_key or who & _identities(author.identity):
            how = "signed with their key" if by_key else "written by them"
            return (
                f"separation of duties: {by} may not decide {cr.id}: a commit in its delta was "
                f"{how} ({author.identity})"
            )
    return None


def check_approval(
    cr: ChangeRequest, approval: Approval, rule: ApprovalRule, verify: Verify
) -> None:
    """Check a person's decision on a CR before it is recorded.

    `rule` is the environment's approval rule (the deploy run's own configuration; the CLI
    takes the one recorded on the CR).

    Raises:
        BadInput: one line naming the rule the decision breaks: `not an approver`, `signature
            required`, `stale approval`, `bad signature`, `separation of duties` or `quorum`.
    """
    by = approval.by
    approver = rule.approver(by)
    if rule.approvers and approver is None:
        raise BadInput(f"not an approver: {by} is not listed for {cr.environment}")
    if approval.signature is None:
        if rule.signed_required:
            raise BadInput(
                f"signature required: {cr.environment} takes only signed approvals "
                f"(changeflow cr approve {cr.id} --by IDENTITY --key PATH)"
            )
    else:
        current = cr_digest(cr)
        if approval.cr_digest != current:
            raise BadInput(
                f"stale approval: signed over {approval.cr_digest}, but {cr.id} is now {current}"
            )
        if approver is None or not verify(
            approver, statement_of(cr.id, approval), approval.signature
        ):
            raise BadInput(f"bad signature: the signature does not verify as {by}'s for {cr.id}")
    conflict = _duty_conflict(cr, by, approver)
    if conflict is not None:
        raise BadInput(conflict)
    # a CR in doubt (`changeflow.deploying`) asks its approvers again: no second approval then
    again = approval.decision == "approved" and cr.state is not ChangeState.implement
    person = _person(by, approver)
    if again and any(_person(g, rule.approver(g)) == person for g in approvals_given(cr)):
        raise BadInput(
            f"quorum: {by} has already approved {cr.id}; "
            f"{approvals_needed(cr)} more from other approvers needed"
        )


def approval_problems(cr: ChangeRequest, verify: Verify) -> list[str]:
    """What `verify` finds wrong with a CR's decisions, against the rule recorded on it.

    Every person's decision must pass `check_approval` as it stood when it was taken, and a CR
    that went ahead on people's approvals must have met its quorum.
    """
    problems: list[str] = []
    rule = rule_of(cr)
    counted: list[Approval] = []  # the current round's decisions that pass their checks
    start = _round_start(cr)
    for i, approval in enumerate(cr.approvals):
        before = cr.model_copy(update={"approvals": cr.approvals[:i]})
        try:
            if not approval.automatic:
                check_approval(before, approval, rule, verify)
        except BadInput as refused:
            problems.append(f"{cr.id}: approval {i + 1} by {approval.by}: {refused}")
        else:
            if i >= start:
                counted.append(approval)
    went_ahead = cr.state in (ChangeState.implement, ChangeState.review, ChangeState.closed)
    emergency_waiting = cr.type is ChangeType.emergency and cr.state is ChangeState.review
    # a refused decision counts for nobody: the quorum is taken over the ones that verify
    valid = cr.model_copy(update={"approvals": counted, "history": []})
    if went_ahead and not emergency_waiting and approvals_needed(valid):
        problems.append(f"{cr.id}: quorum not met: {quorum_line(valid)}")
    return problems


def check_emergency_close(cr: ChangeRequest, category: CloseCategory) -> None:
    """Refuse to close an emergency successful before its retroactive approvals meet the quorum.

    Raises:
        BadInput: naming the rule and how many approvals are still needed.
    """
    successful = category in (CloseCategory.successful, CloseCategory.successful_issues)
    if cr.type is ChangeType.emergency and successful and approvals_needed(cr):
        raise BadInput(
            f"emergency review: {cr.id} cannot close {category.value} before its retroactive "
            f"approvals meet the quorum ({quorum_line(cr)})"
        )


def reopen(cr: ChangeRequest, *, by: str, why: str = "") -> ChangeRequest:
    """Re-open a cancelled CR for approval (its approval timed out, say), in `authorize`.

    The decisions before stay in its record; the quorum counts those after the reopening.

    Raises:
        BadInput: when the CR was not cancelled.
    """
    if cr.state is not ChangeState.cancelled:
        raise BadInput(f"{cr.id} is {cr.state.value}: only a cancelled CR can be reopened")
    entry = {
        "from": cr.state.value,
        "to": ChangeState.authorize.value,
        "by": by,
        "date": utcnow().isoformat(),
        "why": why or "reopened for approval",
        # the quorum counts only the approvals after this one (`_round`)
        _REOPENED_AT: str(len(cr.approvals)),
    }
    return cr.model_copy(
        update={
            "state": ChangeState.authorize,
            "close_category": None,
            "close_notes": "",
            "history": [*cr.history, entry],
        }
    )


def signing_instructions(cr: ChangeRequest, rule: ApprovalRule, date: datetime) -> str:
    """What the paused run's form shows under the CR: the quorum and the exact text to sign.

    One text per listed approver, for approving with an empty comment at the form's `date`
    (rejecting, or adding a comment, changes the text: `decision` and `comment` are in it).
    """
    lines = [f"**Approvals:** {quorum_line(cr)}.", ""]
    if not rule.approvers:
        return "\n".join([*lines, "Unsigned approvals are accepted for this environment."])
    content = cr_digest(cr)
    lines += [
        "**Sign** the text for your identity with your SSH key and paste the signature below "
        "(keep `date` as the form has it):",
        "",
        f"    printf '%s' 'TEXT' | ssh-keygen -Y sign -n {APPROVAL_NAMESPACE} -f ~/.ssh/id_ed25519",
        "",
        "or run `changeflow cr approve " + cr.id + " --by IDENTITY --key PATH` instead.",
    ]
    if not rule.signed_required:
        lines.append("Unsigned approvals from a listed approver are accepted too.")
    for approver in rule.approvers:
        text = text_to_sign(cr.id, content, "approved", "", date, approver.identity)
        lines += ["", f"`{approver.identity}` approving:", "", f"    {text}"]
    return "\n".join(lines)
