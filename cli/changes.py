"""`changeflow cr`: read, approve, reject and close change requests.

Every input is checked before anything is written: an empty or multi-line `--by`, an unknown
CR id, a CR that is not waiting for the decision (closed, cancelled, already decided) and an
unknown close category are bad input (exit 2, one line, the change repo untouched). A decision
is written only over the CR it was taken on: when another one landed in between (two people
deciding at once), it is refused with what the CR holds now (exit 1, nothing written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from changeflow.errors import BadInput
from changeflow.models import (
    Approval,
    ChangeRequest,
    CloseCategory,
)
from cli._app import (
    JsonOpt,
    cr_app,
    emit,
)
from cli.audit import checkpoint_write


def _cr_line(cr: ChangeRequest) -> str:
    category = cr.close_category.value if cr.close_category else "-"
    ready = "ready" if cr.deployment_ready else "not-ready"
    return (
        f"{cr.id}  {cr.environment:<10} {cr.region:<10} {cr.state.value:<10} {category:<18} {ready}"
    )


@cr_app.command("list")
def cr_list(
    environment: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False
) -> None:
    """Every change request (optionally of one environment)."""
    from blocks import stores

    crs = stores.change_management(None).list(environment)
    emit([c.model_dump(mode="json", exclude_none=True) for c in crs], as_json,
          "\n".join(_cr_line(c) for c in crs) or "no change requests")  # fmt: skip


@cr_app.command("get")
def cr_get(cr_id: str, as_json: JsonOpt = False) -> None:
    """One change request, rendered for people (or as its JSON record)."""
    from blocks import stores
    from changeflow.render import render_change_request

    cr = stores.change_management(None).get(cr_id)
    emit(cr, as_json, render_change_request(cr))


def _who(by: str, what: str) -> str:
    """Check `--by`: a name on one line (it becomes a commit author and a journal entry)."""
    name = by.strip()
    if not name:
        raise BadInput(f"--by must name who {what}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadInput(f"--by must be one line without control characters: {name!r}")
    return name


def _decide(
    cr_id: str, by: str, comment: str, approved: bool, key: Path | None, as_json: bool
) -> None:
    who = _who(by, "decides")  # before the slow imports: a typo answers at once
    from blocks import stores
    from blocks.ssh_signatures import sign, verify
    from changeflow.approvals import check_approval, cr_digest, quorum_line, rule_of, statement_of
    from changeflow.deploying import decide
    from changeflow.revisions import revision

    changes = stores.change_management(None)
    cr = changes.get(cr_id)
    read = revision(cr)
    decision = "approved" if approved else "rejected"
    approval = Approval(by=who, decision=decision, comment=comment, cr_digest=cr_digest(cr))
    if key is not None:  # the statement names this very CR content: it cannot be replayed
        signature = sign(key, statement_of(cr.id, approval))
        approval = approval.model_copy(update={"signature": signature})
    # the rule the CR was filed under: who may decide, signed or not, separation of duties,
    # quorum; the deploy run checks again against its own environments file
    check_approval(cr, approval, rule_of(cr), verify)
    # `decide` refuses a CR that is not waiting (closed, cancelled, decided) before anything is
    # written; the write is refused (exit 1) when another decision landed since the read
    cr = decide(cr, approval)
    cr = changes.update(cr, message=f"{decision} by {who}", expected=read)
    checkpoint_write(changes, cr.id)
    resumed = _resume(cr, approved, who, comment)
    emit(cr, as_json, f"{cr.id} {decision} by {who} ({cr.state.value}); {quorum_line(cr)}{resumed}")


# how often `cr approve` looks whether the deploy run has reached its pause
_POLL_S = 0.5


def _resume(cr: ChangeRequest, approved: bool, by: str, comment: str) -> str:
    """Resume the deploy run paused on this CR, waiting briefly for it to reach its pause."""
    if not cr.flow_run_id:
        return ""
    import time

    from prefect import get_client
    from prefect.flow_runs import resume_flow_run

    run_id = UUID(cr.flow_run_id)
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_paused() and _shows_its_form(client, run_id, state):
                # the decision is on the CR already: the run reads it there (and pauses again
                # while the quorum is not met)
                run_input = {"approved": approved, "by": by, "comment": comment, "recorded": True}
                resume_flow_run(run_id, run_input=run_input)
                return f"; resumed deploy run {run_id}"
            if (state is not None and state.is_final()) or time.monotonic() > deadline:
                name = state.name if state else "unknown"
                return f"; deploy run {run_id} is {name}: rerun the deployment"
            time.sleep(_POLL_S)


def _shows_its_form(client: Any, run_id: UUID, state: Any) -> bool:
    """Whether a paused run has saved the form it waits for. Prefect pauses a run first and
    saves the form's schema after; a resume in between is refused."""
    from prefect.exceptions import PrefectHTTPStatusError

    keyset = state.state_details.run_input_keyset
    if not keyset:
        return True
    try:
        client.read_flow_run_input(run_id, keyset["schema"])
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 404:
            return False
        raise
    return True


KeyOpt = Annotated[
    Path | None,
    typer.Option(help="Your SSH ed25519 private key: the decision is signed with it."),
]


@cr_app.command("approve")
def cr_approve(
    cr_id: str,
    by: Annotated[str, typer.Option(help="Who approves: an approver's identity.")],
    key: KeyOpt = None,
    comment: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a CR waiting for approval; its deployment resumes once the quorum is met."""
    _decide(cr_id, by, comment, True, key, as_json)


@cr_app.command("reject")
def cr_reject(
    cr_id: str,
    by: Annotated[str, typer.Option(help="Who rejects: an approver's identity.")],
    key: KeyOpt = None,
    comment: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Reject a CR waiting for approval; its deployment is cancelled."""
    _decide(cr_id, by, comment, False, key, as_json)


@cr_app.command("reopen")
def cr_reopen(
    cr_id: str,
    by: Annotated[str, typer.Option(help="Who re-opens it.")],
    as_json: JsonOpt = False,
) -> None:
    """Re-open a cancelled CR (its approval timed out) for approval; then
    `deploy --change-request ID` carries on with it."""
    who = _who(by, "re-opens")
    from blocks import stores
    from changeflow.approvals import reopen
    from changeflow.revisions import revision

    changes = stores.change_management(None)
    read = changes.get(cr_id)
    cr = reopen(read, by=who)
    cr = changes.update(cr, message=f"reopened by {who}", expected=revision(read))
    checkpoint_write(changes, cr.id)
    emit(cr, as_json, f"{cr.id} reopened by {who} ({cr.state.value})")


@cr_app.command("close")
def cr_close(
    cr_id: str,
    category: Annotated[CloseCategory, typer.Option()],
    notes: Annotated[str, typer.Option()] = "",
    by: Annotated[str, typer.Option()] = "changeflow-cli",
    as_json: JsonOpt = False,
) -> None:
    """Close an implemented CR (an emergency one in review, say) with its outcome."""
    who = _who(by, "closes")
    from blocks import stores
    from changeflow.change import close
    from changeflow.revisions import revision

    changes = stores.change_management(None)
    read = changes.get(cr_id)
    cr = close(read, category, by=who, notes=notes)
    cr = changes.update(cr, message=f"closed {category.value} by {who}", expected=revision(read))
    checkpoint_write(changes, cr.id)
    emit(cr, as_json, f"{cr.id} closed {category.value}")
