"""The ServiceNow change-management block: change requests as `change_request` records.

ServiceNow numbers each record itself (`CHG0030001`), and that number is the change request's
id. The table's fields carry what ServiceNow users look at (state, type, priority, plans, dates,
close code); the full changeflow record is attached to the change request as
`changeflow-cr.json` on every update (older versions stay attached), and each update appends a
work note saying what changed, who and why, so the journal is the audit trail.
`correlation_id` points at the attachment that holds the current version, and
`correlation_display = changeflow` marks changeflow's records. A decision taken in ServiceNow
itself (the record's `approval` set to approved or rejected) is read by `decision`, with who
set it from the audit trail (`sys_audit`, which the API user must be able to read); changeflow
never writes that field: a decision recorded through changeflow lives in the attached record.

Uses the Table API (`/api/now/table/change_request`, `/api/now/table/sys_journal_field`,
`/api/now/table/sys_audit`) and the Attachment API (`/api/now/attachment/file`,
`/api/now/attachment/{sys_id}/file`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection
from typing import Literal

from pydantic import HttpUrl

from blocks.servicenow.client import (
    LOGO,
    MARKER,
    ServiceNowBlock,
    ServiceNowError,
    moment,
    servicenow_time,
)
from changeflow.change_ids import CLOSED_STATES, check_listing, is_change_id, listed
from changeflow.change_notes import describe_change
from changeflow.deployed import check_digests, select_deployments
from changeflow.errors import BadInput, IntegrityError
from changeflow.models import Approval, ChangeRequest, ChangeState, CloseCategory, Priority
from changeflow.ports import Commit
from changeflow.revisions import check_revision
from changeflow.stored import stored_change_request

__all__ = [
    "ATTACHMENT_NAME",
    "PRIORITIES",
    "STATES",
    "ServiceNowChangeManagement",
    "change_fields",
    "implementation_plan",
]

ATTACHMENT_NAME = "changeflow-cr.json"
_TABLE = "change_request"
_PATH = f"/api/now/table/{_TABLE}"
# The short description: a listing selects one environment's records by its start.
_SUMMARY = "changeflow: deploy to {} / {}"
# The length of `implementation_plan` in the base system; a longer plan ends with `_MORE`.
_PLAN_LIMIT = 4000
_MORE = "(more entries in the attached changeflow-cr.json)"
# Digests per lookup query: each is an `implementation_planLIKE<digest>` term of the URL.
_DIGESTS_PER_QUERY = 20
# A placeholder id for the draft built before ServiceNow has numbered the record.
_PLACEHOLDER = "CHG0000000"
# The `approval` values that are a decision; "not requested" and "requested" are not (yet).
_DECISIONS: dict[str, Literal["approved", "rejected"]] = {
    "approved": "approved",
    "rejected": "rejected",
}

STATES: dict[ChangeState, str] = {
    ChangeState.new: "-5",
    ChangeState.assess: "-4",
    ChangeState.authorize: "-3",
    ChangeState.scheduled: "-2",
    ChangeState.implement: "-1",
    ChangeState.review: "0",
    ChangeState.closed: "3",
    ChangeState.cancelled: "4",
}
PRIORITIES: dict[Priority, str] = {
    Priority.critical: "1",
    Priority.high: "2",
    Priority.moderate: "3",
    Priority.low: "4",
    Priority.planning: "5",
}
# ServiceNow's close codes; a cancelled change has none (its state says it).
_CLOSE_CODES: dict[CloseCategory, str] = {
    CloseCategory.successful: "successful",
    CloseCategory.successful_issues: "successful_issues",
    CloseCategory.unsuccessful: "unsuccessful",
    CloseCategory.cancelled: "",
}


def implementation_plan(cr: ChangeRequest) -> str:
    """What the change deploys, one line per entry with the sha256 it deploys, then what it
    deletes: the field `deployments` looks digests up in (a Table API `LIKE`).

    A plan too long for the field is cut, and its last line says so (`_MORE`): a lookup then
    always reads that CR, whose attached record decides.
    """
    names = [*cr.delta, *(n for n in sorted(cr.bom) if n not in cr.delta)]
    lines = [f"- {n} {cr.bom[n]}" if n in cr.bom else f"- {n}" for n in names]
    plan = "\n".join([*lines, *(f"- delete {name}" for name in cr.deletions)])
    if len(plan) <= _PLAN_LIMIT:
        return plan
    return plan[: _PLAN_LIMIT - len(_MORE) - 1].rsplit("\n", 1)[0] + "\n" + _MORE


def change_fields(cr: ChangeRequest) -> dict[str, str]:
    """Map a change request onto `change_request` fields (no id: ServiceNow numbers it)."""
    reasons = "\n".join(f"- {r}" for r in cr.readiness_reasons) or "every required check passed"
    description = cr.description or f"Deploy {len(cr.delta)} changed entries"
    return {
        "short_description": _SUMMARY.format(cr.environment, cr.region)[:160],
        "description": (
            f"{description}\n\nDeployment ready: {'yes' if cr.deployment_ready else 'no'}\n"
            f"{reasons}\n\nEvidence summary: {cr.evidence_summary_url or '(none)'} "
            f"{cr.evidence_summary_sha256 or ''}".rstrip()
        ),
        "type": cr.type.value,
        "state": STATES[cr.state],
        "priority": PRIORITIES[cr.priority],
        "justification": cr.purpose,
        "risk_impact_analysis": cr.impact,
        "implementation_plan": implementation_plan(cr),
        "backout_plan": cr.backout_plan,
        "start_date": servicenow_time(cr.planned_start),
        "end_date": servicenow_time(cr.planned_end),
        "close_code": _CLOSE_CODES[cr.close_category] if cr.close_category else "",
        "close_notes": cr.close_notes,
    }


class ServiceNowChangeManagement(ServiceNowBlock):
    """Change requests kept in ServiceNow's `change_request` table.

    Attributes:
        instance_url: e.g. `https://example.service-now.com`.
        username: API user for basic auth (with `password`).
        password: that user's password.
        token: an OAuth bearer token, instead of username and password.
        timeout: seconds per request.
    """

    _block_type_name = "changeflow ServiceNow Change Management"
    _block_type_slug = "changeflow-servicenow-change-management"
    _logo_url = LOGO
    _documentation_url = HttpUrl(
        "https://developer.servicenow.com/dev.do#!/reference/api/latest/rest/c_TableAPI"
    )
    _code_example = """
    ```python
    from blocks.servicenow import ServiceNowChangeManagement

    changes = ServiceNowChangeManagement.load("BLOCK_NAME")
    cr = changes.get("CHG0030001")
    print(changes.history(cr.id))
    ```
    """
    _description = (
        "changeflow change requests in ServiceNow's change_request table, with the full record "
        "attached as changeflow-cr.json and a work note per update."
    )

    def _find(self, id: str) -> dict[str, str] | None:
        if not is_change_id(id):
            return None
        found = self.rows(_TABLE, f"number={id}", limit=1)
        return found[0] if found else None

    def _own(self, id: str) -> dict[str, str]:
        row = self._find(id)
        if row is None or row.get("correlation_display") != MARKER:
            raise BadInput(f"unknown change request {id}")
        return row

    def _attach(self, sys_id: str, cr: ChangeRequest) -> str:
        meta = self.result(
            "POST",
            "/api/now/attachment/file",
            params={"table_name": _TABLE, "table_sys_id": sys_id, "file_name": ATTACHMENT_NAME},
            content=cr.to_json() + b"\n",
            headers={"Content-Type": "application/json"},
        )
        return str(meta["sys_id"])

    def _record(self, row: dict[str, str]) -> ChangeRequest:
        number, pointer = row.get("number", ""), row.get("correlation_id", "")
        if row.get("correlation_display") != MARKER or not pointer:
            raise IntegrityError(f"{number} in ServiceNow has no changeflow record attached")
        response = self.call("GET", f"/api/now/attachment/{pointer}/file", missing_ok=True)
        if response is None:
            raise IntegrityError(f"{number}: its changeflow record {pointer} is gone")
        return stored_change_request(number, response.content, f": attachment {pointer}")

    def _store(
        self,
        sys_id: str,
        cr: ChangeRequest,
        message: str,
        by: str | None,
        read: tuple[str, str] | None = None,
    ) -> None:
        # Attach first, then point the record at it in the same PATCH that writes the work
        # note: a reader sees the old version or the new one, never a half-written one.
        pointer = self._attach(sys_id, cr)
        if read is not None:
            # `read`: the version pointer and the revision the caller read. The Table API has
            # no conditional update: looking again right before the PATCH leaves the narrowest
            # window; an attachment made in vain stays, as old versions do.
            row = self._own(cr.id)
            if row.get("correlation_id") != read[0] and not check_revision(
                self._record(row), cr, read[1]
            ):
                return
        body = {
            **change_fields(cr),
            "correlation_id": pointer,
            "correlation_display": MARKER,
            "work_notes": describe_change(cr, message, by),
        }
        self.call("PATCH", f"{_PATH}/{sys_id}", json=body)

    # --------------------------------------------------------------------- the port

    def create(
        self,
        draft: Callable[[str], ChangeRequest],
        message: str = "change request created",
        *,
        by: str | None = None,
    ) -> ChangeRequest:
        """File a new change request; ServiceNow's number becomes its id.

        Args:
            draft: builds the record for a given id (called twice: once to check it, once
                with the number ServiceNow assigned).
            message: why, for the first work note.
            by: who, named in the work note.

        Returns:
            The record as stored.
        """
        row = self.result("POST", _PATH, json=change_fields(draft(_PLACEHOLDER)))
        number, sys_id = str(row.get("number", "")), str(row["sys_id"])
        if not is_change_id(number):
            raise ServiceNowError(f"ServiceNow numbered the change request {number!r}, not CHG+7")
        cr = draft(number)
        if cr.id != number:
            raise BadInput(f"the draft change request has id {cr.id}, not {number}")
        self._store(sys_id, cr, message, by)
        return cr

    def update(
        self,
        cr: ChangeRequest,
        message: str,
        *,
        by: str | None = None,
        expected: str | None = None,
    ) -> ChangeRequest:
        """Store a change request's new state: fields, a new attachment and a work note.

        Writing the state already stored changes nothing. With `expected`, the attached record
        must be that revision, checked when read and again (by its attachment, the version
        `correlation_id` points at) right before the record is pointed at the new one.

        Raises:
            BadInput: when no change request has that id.
            StaleChange: when the CR changed since the caller read it.
        """
        row = self._own(cr.id)
        if check_revision(self._record(row), cr, expected):
            read = (row.get("correlation_id", ""), expected) if expected is not None else None
            self._store(row["sys_id"], cr, message, by, read)
        return cr

    def get(self, id: str) -> ChangeRequest:
        """Return a change request.

        Raises:
            BadInput: when there is none with that id.
        """
        return self._record(self._own(id))

    def list(
        self, environment: str | None = None, open_only: bool = False
    ) -> builtins.list[ChangeRequest]:
        """Return the changeflow change requests of `environment` (every one when None), only
        open ones with `open_only`, sorted by id.

        The Table API query selects them (the environment by the short description changeflow
        writes, open ones by state), so the attachments of the others are never read.

        Raises:
            BadInput: for a name that cannot be an environment.
        """
        check_listing(environment)
        query = [f"correlation_display={MARKER}"]
        if environment is not None:
            query.append(f"short_descriptionSTARTSWITH{_SUMMARY.format(environment, '')}")
        if open_only:
            closed = ",".join(STATES[ChangeState(s)] for s in sorted(CLOSED_STATES))
            query.append(f"stateNOT IN{closed}")
        rows = self.rows(_TABLE, "^".join([*query, "ORDERBYnumber"]))
        found = (self._record(row) for row in rows)
        return sorted(
            (cr for cr in found if listed(cr, environment, open_only)), key=lambda c: c.id
        )

    def deployments(self, sha256s: Collection[str]) -> builtins.list[ChangeRequest]:
        """The changeflow change requests whose bill of materials names one of the digests.

        A Table API query finds the records whose implementation plan holds a digest (or was
        cut, `_MORE`), a few digests per query; only their attached records are read, and
        only those that list a digest count (a plan edited by hand adds nothing).

        Raises:
            BadInput: for a malformed digest.
        """
        digests = check_digests(sha256s)
        rows: dict[str, dict[str, str]] = {}
        for start in range(0, len(digests), _DIGESTS_PER_QUERY):
            terms = [*digests[start : start + _DIGESTS_PER_QUERY], _MORE]
            looked = "^OR".join(f"implementation_planLIKE{term}" for term in terms)
            query = f"correlation_display={MARKER}^{looked}^ORDERBYnumber"
            rows.update((row["sys_id"], row) for row in self.rows(_TABLE, query))
        return select_deployments((self._record(row) for row in rows.values()), digests)

    def history(self, id: str) -> builtins.list[Commit]:
        """Return the work notes of a change request, newest first; empty for an unknown id.

        Each is a `Commit` whose `commit` is the journal entry's sys_id and `date` ISO 8601 UTC.
        """
        row = self._find(id)
        if row is None:
            return []
        return [
            Commit(
                commit=note["sys_id"],
                author=note.get("sys_created_by", ""),
                date=_iso(note.get("sys_created_on", "")),
                message=note.get("value", "").strip(),
            )
            for note in self.work_notes(row["sys_id"])
        ]

    def link(self, cr: ChangeRequest) -> str:
        """The change request's form on the instance (found by its number)."""
        return f"{self.where}/change_request.do?sysparm_query=number={cr.id}"

    def decision(self, id: str) -> Approval | None:
        """The decision taken in ServiceNow: the record's `approval`, approved or rejected.

        The approver and the time are those of the audit record (`sys_audit`) of the change to
        `approval`, not the record's `sys_updated_by`: changeflow's own later writes update the
        record, and must not take the decision over. None while the approval is not requested
        or requested. Decisions recorded through changeflow live in the change request itself
        (`get`).

        Raises:
            BadInput: when there is no changeflow change request with that id.
        """
        row = self._own(id)
        decided = _DECISIONS.get(row.get("approval", ""))
        if decided is None:
            return None
        query = (
            f"tablename={_TABLE}^documentkey={row['sys_id']}^fieldname=approval"
            "^ORDERBYDESCsys_created_on"
        )
        audits = self.rows("sys_audit", query, limit=1)
        audit = audits[0] if audits and audits[0].get("newvalue") == decided else {}
        approval = Approval(
            # without a readable audit record (no read access to sys_audit): ServiceNow's word
            by=audit.get("user") or "servicenow",
            decision=decided,
            comment=f"{decided} in ServiceNow",
            source="servicenow",
        )
        when = moment(audit.get("sys_created_on", "") or row.get("sys_updated_on", ""))
        return approval.model_copy(update={"date": when}) if when else approval


def _iso(stamp: str) -> str:
    when = moment(stamp)
    return when.isoformat() if when else stamp
