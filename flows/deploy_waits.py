"""Where a deploy run waits: for a person's decision, and for its change window.

For a decision the run pauses (`flows.pausing`, with the approval form) until a person approves
or rejects the CR in the UI, or `changeflow cr approve|reject` records the decision and resumes
the run. Where the change-management backend takes decisions of its own (ServiceNow's approval
field), a watcher asks it every `BACKEND_POLL_S` while the run is paused and resumes the run
when one arrives; the run then reads the decision from the backend itself (a resume carries no
authority), checks it like any other and records it with its source.

For a change window the run does not wait in its process, which could hold a worker for days.
It records the wait on the CR, moves its own flow run to a Scheduled state at the next opening
(named `AwaitingChangeWindow`, so the UI shows what it waits for and until when) and ends its
process with Prefect's `Pause` signal, as `suspend_flow_run` does: the worker is free, and at
the opening it runs the same flow run again. That run carries on with the CR from the flow's
first step, so it reads the environments file and decides again: a freeze declared meanwhile
still holds. `pause_flow_run(timeout=...)` was not chosen because it blocks the process until
someone resumes the run, and `suspend_flow_run` because nobody would resume it at the opening.
An in-process run (the CLI's) has no worker to come back for it: `flows.deploy_flow.run_deploy`
runs it again itself, and Prefect's orchestration holds it until its scheduled time.
"""

from __future__ import annotations

import contextvars
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import NoReturn
from uuid import UUID, uuid4

from prefect import State, get_client, get_run_logger
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import Pause
from prefect.flow_runs import resume_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Scheduled
from pydantic import Field

from blocks.ssh_signatures import verify
from changeflow.approvals import check_approval, cr_digest, quorum_line, signing_instructions
from changeflow.approvers import ApprovalRule, normalize_signature
from changeflow.change import cancel, note, transition
from changeflow.deploying import IN_DOUBT, decide, in_doubt, waiting_for_person
from changeflow.errors import BadInput, StaleChange
from changeflow.models import Approval, ChangeRequest, ChangeState, ChangeType
from changeflow.ports import ChangeManagement
from changeflow.render import render_change_request
from changeflow.windows import WindowDecision, decide_window
from flows.deploy_steps import Deployment, advance
from flows.pausing import pause_for_input
from flows.ui import announce_change, publish_change_request
from flows.ui_publishing import wait_until_shown
from tasks.change import read_change_request

__all__ = [
    "AWAITING_WINDOW",
    "BACKEND_POLL_S",
    "START_MARGIN",
    "ApprovalInput",
    "start_in_window",
    "wait_for_approval",
]

AWAITING_WINDOW = "AwaitingChangeWindow"
"""The name of the Scheduled state a run waits for its change window in."""

START_MARGIN = timedelta(seconds=1)
"""How long after the opening the run is scheduled: Prefect rounds the wait to whole seconds and
may start a run up to half a second early, which would still be outside the window."""


BACKEND_POLL_S = 10.0
"""How often a paused run asks the change-management backend for a decision taken there."""


class ApprovalInput(RunInput):
    """The form a person fills in to approve or reject a change request.

    Where the environment lists approvers, `signature` is the SSH signature of the text the
    form shows (`changeflow.approvals.signing_instructions`) for `by`, `approved`, `comment`
    and `date`; a typed name alone is refused there.
    """

    approved: bool
    by: str
    comment: str = ""
    date: str = Field(default="", description="The time in the signed text; keep it.")
    signature: str = Field(default="", description="Paste `ssh-keygen -Y sign`'s output.")
    recorded: bool = Field(
        default=False, description="Set by `changeflow cr approve`: the CR has the decision."
    )


def _form_approval(cr: ChangeRequest, form: ApprovalInput) -> Approval:
    """The decision the form carries, taken on the CR as it was shown (`cr`).

    Raises:
        BadInput: for a malformed date or signature.
    """
    try:
        date = datetime.fromisoformat(form.date) if form.date else datetime.now(UTC)
        signature = normalize_signature(form.signature) if form.signature.strip() else None
    except ValueError as exc:
        raise BadInput(f"bad signature: {exc}") from exc
    return Approval(
        by=form.by.strip() or "prefect-ui",
        decision="approved" if form.approved else "rejected",
        comment=form.comment,
        date=date,
        cr_digest=cr_digest(cr),
        signature=signature,
    )


def wait_for_approval(d: Deployment, cr: ChangeRequest) -> ChangeRequest:
    """Pause until people decide, in the UI or with `changeflow cr approve|reject`.

    A CR waits for its approvals (as many distinct approvers as its environment's quorum), or
    (`changeflow.deploying.in_doubt`) for a person to confirm running a deploy command that may
    have run already. Each decision from the form is checked against the environment's approval
    rule of this run's own configuration (signature, approvers, separation of duties, quorum):
    one that fails leaves the run paused, its log saying why. A decision is written only over
    the CR as read after the pause: one recorded with the CLI meanwhile stands, and the run
    pauses again while the quorum is not met. A decision taken in the backend (ServiceNow) is
    read from it, checked by the same rule and recorded with its source. Nobody answering
    within the approval timeout cancels the CR (`changeflow cr reopen` re-opens it).
    """
    changes = d.stores.changes
    run_id = str(flow_run.get_id())
    if cr.flow_run_id != run_id:
        # a rerun waits in place of the run that filed the CR
        cr = advance(d, cr, cr.model_copy(update={"flow_run_id": run_id}), "waiting for approval")
    rule = d.spec.approval_rule
    deadline = time.monotonic() + d.spec.approval_timeout_s
    refused: set[tuple[str, str, datetime]] = set()  # backend decisions refused, not asked again
    while True:
        with _BackendWatch(changes, cr.id, run_id, refused):
            form, shown = _pause(d, cr, rule, deadline)
        current = read_change_request(changes, cr.id)
        if not waiting_for_person(current):
            announce_change(cr, current)
            return current
        taken = _backend_approval(changes, current, rule, refused)
        if taken is None and form is None:
            taken = (
                Approval(
                    by="changeflow",
                    decision="rejected",
                    comment="approval timed out",
                    automatic=True,
                ),
                "timed out",
            )
        elif taken is None and form is not None and not form.recorded:
            taken = _form_decision(current, shown, form, rule)
        if taken is None:  # nothing to record: the CLI's decision left the quorum short, say
            cr = current
            continue
        approval, why = taken
        try:
            cr = advance(d, current, decide(current, approval), why)
        except StaleChange as stale:
            get_run_logger().warning("%s; the form's decision was not recorded", stale)
            cr = read_change_request(changes, cr.id)
        if not waiting_for_person(cr) or (form is None and approval.automatic):
            return cr


def _form_decision(
    current: ChangeRequest, shown: ChangeRequest, form: ApprovalInput, rule: ApprovalRule
) -> tuple[Approval, str] | None:
    """The form's decision, checked against the CR as it is now; None (logged) when refused."""
    try:
        approval = _form_approval(shown, form)
        check_approval(current, approval, rule, verify)
    except BadInput as refused:
        get_run_logger().warning("%s: decision refused: %s; still waiting", current.id, refused)
        return None
    return approval, approval.decision


def _seen(approval: Approval) -> tuple[str, str, datetime]:
    return approval.by, approval.decision, approval.date


def _backend_decision(
    changes: ChangeManagement, cr: ChangeRequest, refused: set[tuple[str, str, datetime]]
) -> Approval | None:
    """A decision taken in the backend itself (ServiceNow's approval) that the CR does not
    hold yet and that was not refused before; None for a backend whose decisions are the CR's."""
    decided = changes.decision(cr.id)
    if decided is None or decided.source is None or _seen(decided) in refused:
        return None
    held = {(*_seen(a), a.source) for a in cr.approvals}
    return None if (*_seen(decided), decided.source) in held else decided


def _backend_approval(
    changes: ChangeManagement,
    current: ChangeRequest,
    rule: ApprovalRule,
    refused: set[tuple[str, str, datetime]],
) -> tuple[Approval, str] | None:
    """The backend's new decision, checked like any other; a refused one is logged and kept in
    `refused`, so the watcher does not wake the run for it again."""
    decided = _backend_decision(changes, current, refused)
    if decided is None:
        return None
    try:
        check_approval(current, decided, rule, verify)
    except BadInput as refusal:
        refused.add(_seen(decided))
        get_run_logger().warning(
            "%s: decision in %s refused: %s; still waiting", current.id, decided.source, refusal
        )
        return None
    return decided, f"{decided.decision} in {decided.source} by {decided.by}"


class _BackendWatch:
    """While the run is paused, ask the backend for a decision of its own every
    `BACKEND_POLL_S` and resume the run when one arrives (the run reads and checks it itself)."""

    def __init__(
        self,
        changes: ChangeManagement,
        cr_id: str,
        run_id: str,
        refused: set[tuple[str, str, datetime]],
    ) -> None:
        self._changes, self._cr_id, self._run_id = changes, cr_id, UUID(run_id)
        self._refused = set(refused)
        self._stop = threading.Event()
        # the Prefect settings (the API) live in this thread's context: the watcher gets a copy
        run = contextvars.copy_context().run
        self._thread = threading.Thread(target=run, args=(self._watch,), daemon=True)

    def __enter__(self) -> _BackendWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(BACKEND_POLL_S):
            try:
                decided = self._changes.decision(self._cr_id)
                if decided is None or decided.source is None:
                    continue  # none yet, or the backend's decisions are the CR's own (git)
                cr = self._changes.get(self._cr_id)
                if _backend_decision(self._changes, cr, self._refused) is None:
                    continue
                # no authority in the input: the run reads the decision from the backend
                resume_flow_run(
                    self._run_id, run_input={"approved": False, "by": "", "recorded": True}
                )
                return
            except Exception as exc:  # the next poll tries again; the timeout still holds
                get_run_logger().warning("asking the backend for a decision failed: %s", exc)


def _pause(
    d: Deployment, cr: ChangeRequest, rule: ApprovalRule, deadline: float
) -> tuple[ApprovalInput | None, ChangeRequest]:
    """Show the CR and what to sign, and pause for the form; None when the time is up."""
    publish_change_request(cr, d.stores.changes.link(cr))
    now = datetime.now(UTC).replace(microsecond=0)
    question = f"{render_change_request(cr)}\n\n{signing_instructions(cr, rule, now)}"
    if in_doubt(cr):
        question = f"**{IN_DOUBT}**: approve to run it again, reject to close the CR.\n\n{question}"
        get_run_logger().warning(
            "%s: %s; waiting for a person: changeflow cr approve|reject %s --by NAME",
            cr.id,
            IN_DOUBT,
            cr.id,
        )
    else:
        get_run_logger().warning(
            "%s is not ready (%s); waiting for approval (%s): changeflow cr approve %s --by NAME",
            cr.id,
            "; ".join(cr.readiness_reasons[:3]),
            quorum_line(cr),
            cr.id,
        )
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None, cr
    wait_until_shown()  # whoever is asked sees the CR on the paused run
    form = pause_for_input(
        ApprovalInput.with_initial_data(
            description=question, approved=True, by="", date=now.isoformat()
        ),
        timeout_s=max(1, int(remaining)),
        key=str(uuid4()),  # a pause of its own each time the run waits again
    )
    return form, cr


def start_in_window(d: Deployment, cr: ChangeRequest) -> ChangeRequest:
    """Move a scheduled CR to implement inside its change window, refuse it, or reschedule the
    run to the window's opening (which ends this run's process: see the module's docstring)."""
    emergency = cr.type is ChangeType.emergency
    decision = decide_window(d.spec.change_windows, cr.environment, datetime.now(UTC), emergency)
    if decision.wait_until is not None:
        _reschedule(d, cr, decision, decision.wait_until)
    if not decision.allowed:
        refused = cancel(cr, by="changeflow", why=decision.reason, notes=decision.reason)
        return advance(d, cr, refused, "refused: outside its change window")
    why = f"deploying ({decision.reason})" if decision.exempt else "deploying"
    going = transition(cr, ChangeState.implement, by="changeflow", why=why)
    return advance(d, cr, going, "implement")


def _reschedule(
    d: Deployment, cr: ChangeRequest, decision: WindowDecision, opening: datetime
) -> NoReturn:
    """Record the wait on the CR, schedule this flow run at `opening` and end its process.

    Raises:
        Pause: always; Prefect's engine ends the run's process on it, leaving the run Scheduled.
        RuntimeError: when the API refuses to reschedule the run (it was cancelled, say).
    """
    run_id = flow_run.get_id()
    if run_id is None:
        raise RuntimeError(f"{cr.id}: only a flow run can wait for its change window")
    waiting = note(cr, decision.reason).model_copy(update={"flow_run_id": run_id})
    cr = advance(d, cr, waiting, "waiting for its change window")
    publish_change_request(cr, d.stores.changes.link(cr))
    wait_until_shown()  # on the run before it leaves its process
    get_run_logger().info("%s: %s", cr.id, decision.reason)
    state: State[None] = Scheduled(
        scheduled_time=opening + START_MARGIN, name=AWAITING_WINDOW, message=decision.reason
    )
    with get_client(sync_client=True) as client:
        result = client.set_flow_run_state(UUID(run_id), state)
    if result.status is not SetStateStatus.ACCEPT:
        raise RuntimeError(
            f"{cr.id}: the run could not wait for its change window: "
            f"{result.status.value} {result.details}"
        )
    raise Pause(state=result.state)
