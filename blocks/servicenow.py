"""The ServiceNow change-management block: change requests as `change_request` records.

It has the public methods of `GitChangeManagement`, so a flow can use either. ServiceNow numbers
each record itself (`CHG0030001`), and that number is the change request's id. The table's
fields carry what ServiceNow users look at (state, type, priority, plans, dates, close code);
the full changeflow record is attached to the change request as `changeflow-cr.json` on every
update (older versions stay attached), and each update appends a work note saying what changed,
who and why, so the journal is the audit trail. `correlation_id` points at the attachment that
holds the current version, and `correlation_display = changeflow` marks changeflow's records.

Uses the Table API (`/api/now/table/change_request`, `/api/now/table/sys_journal_field`) and the
Attachment API (`/api/now/attachment/file`, `/api/now/attachment/{sys_id}/file`).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, PrivateAttr, SecretStr, ValidationError, model_validator

from blocks.change_management import describe_change
from changeflow.errors import BadInput, IntegrityError, StorageUnavailable
from changeflow.models import ChangeRequest, ChangeState, CloseCategory, Priority

__all__ = [
    "ATTACHMENT_NAME",
    "PRIORITIES",
    "STATES",
    "ServiceNowChangeManagement",
    "ServiceNowError",
    "change_fields",
]

ATTACHMENT_NAME = "changeflow-cr.json"
MARKER = "changeflow"
_TABLE = "/api/now/table/change_request"
_JOURNAL = "/api/now/table/sys_journal_field"
_ID_RE = re.compile(r"^CHG\d{7}$")
# A placeholder id for the draft built before ServiceNow has numbered the record.
_PLACEHOLDER = "CHG0000000"

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


class ServiceNowError(RuntimeError):
    """ServiceNow refused a request (credentials, permissions, validation)."""


def _when(moment: datetime | None) -> str:
    # The Table API reads and writes date-times in UTC as "YYYY-MM-DD HH:MM:SS".
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def change_fields(cr: ChangeRequest) -> dict[str, str]:
    """Map a change request onto `change_request` fields (no id: ServiceNow numbers it)."""
    reasons = "\n".join(f"- {r}" for r in cr.readiness_reasons) or "every required check passed"
    description = cr.description or f"Deploy {len(cr.delta)} changed entries"
    return {
        "short_description": f"changeflow: deploy to {cr.environment} / {cr.region}"[:160],
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
        "implementation_plan": "\n".join(f"- {name}" for name in cr.delta)
        + "".join(f"\n- delete {name}" for name in cr.deletions),
        "backout_plan": cr.backout_plan,
        "start_date": _when(cr.planned_start),
        "end_date": _when(cr.planned_end),
        "close_code": _CLOSE_CODES[cr.close_category] if cr.close_category else "",
        "close_notes": cr.close_notes,
    }


class ServiceNowChangeManagement(Block):
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
    _logo_url = HttpUrl(
        "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
    )
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

    instance_url: str = Field(description="ServiceNow instance URL.")
    username: str | None = Field(default=None, description="API user (basic auth).")
    password: SecretStr | None = Field(default=None, description="The API user's password.")
    token: SecretStr | None = Field(default=None, description="OAuth bearer token.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds per request.")

    _transport: httpx.BaseTransport | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _credentials(self) -> ServiceNowChangeManagement:
        if not self.instance_url.startswith(("https://", "http://")):
            raise ValueError("instance_url must be an http(s) URL")
        if self.token is None and not (self.username and self.password):
            raise ValueError("give username and password, or token")
        return self

    def with_transport(self, transport: httpx.BaseTransport) -> ServiceNowChangeManagement:
        """Send requests through `transport` (a proxy, a test harness); returns self."""
        self._transport = transport
        return self

    # ----------------------------------------------------------------------------- HTTP

    def _client(self) -> httpx.Client:
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        elif self.username and self.password:
            auth = httpx.BasicAuth(self.username, self.password.get_secret_value())
        return httpx.Client(
            base_url=self.instance_url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=self.timeout,
            transport=self._transport,
        )

    def _call(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> httpx.Response | None:
        try:
            with self._client() as client:
                response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise StorageUnavailable(
                f"ServiceNow at {self.instance_url} is unreachable: {type(exc).__name__}"
            ) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (401, 403):
            raise ServiceNowError(
                f"ServiceNow at {self.instance_url} refused the credentials "
                f"({response.status_code} {self._message(response)}): check username and "
                "password, or token"
            )
        if response.status_code >= 400:
            raise ServiceNowError(
                f"ServiceNow {method} {path} failed ({response.status_code}): "
                f"{self._message(response)}"
            )
        return response

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            error = response.json().get("error") or {}
            return " - ".join(p for p in (error.get("message"), error.get("detail")) if p)
        except (ValueError, AttributeError):
            return response.reason_phrase

    def _result(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        assert response is not None
        return response.json()["result"]

    def _find(self, id: str) -> dict[str, str] | None:
        if not _ID_RE.match(id):
            return None
        rows = self._result(
            "GET", _TABLE, params={"sysparm_query": f"number={id}", "sysparm_limit": "1"}
        )
        return rows[0] if rows else None

    def _attach(self, sys_id: str, cr: ChangeRequest) -> str:
        meta = self._result(
            "POST",
            "/api/now/attachment/file",
            params={
                "table_name": "change_request",
                "table_sys_id": sys_id,
                "file_name": ATTACHMENT_NAME,
            },
            content=cr.to_json() + b"\n",
            headers={"Content-Type": "application/json"},
        )
        return str(meta["sys_id"])

    def _record(self, row: dict[str, str]) -> ChangeRequest:
        number, pointer = row.get("number", ""), row.get("correlation_id", "")
        if row.get("correlation_display") != MARKER or not pointer:
            raise IntegrityError(f"{number} in ServiceNow has no changeflow record attached")
        response = self._call("GET", f"/api/now/attachment/{pointer}/file", missing_ok=True)
        if response is None:
            raise IntegrityError(f"{number}: its changeflow record {pointer} is gone")
        try:
            cr = ChangeRequest.model_validate_json(response.content)
        except ValidationError as exc:
            raise IntegrityError(
                f"{number}: attachment {pointer} is not a change request: {exc.errors()[0]['msg']}"
            ) from None
        if cr.id != number:
            raise IntegrityError(f"{number}: attachment {pointer} holds {cr.id}")
        return cr

    def _store(self, sys_id: str, cr: ChangeRequest, message: str, by: str | None) -> None:
        # Attach first, then point the record at it in the same PATCH that writes the work
        # note: a reader sees the old version or the new one, never a half-written one.
        pointer = self._attach(sys_id, cr)
        body = {
            **change_fields(cr),
            "correlation_id": pointer,
            "correlation_display": MARKER,
            "work_notes": describe_change(cr, message, by),
        }
        self._call("PATCH", f"{_TABLE}/{sys_id}", json=body)

    # --------------------------------------------------------------------- public API

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
        fields = change_fields(draft(_PLACEHOLDER))
        row = self._result("POST", _TABLE, json=fields)
        number, sys_id = str(row.get("number", "")), str(row["sys_id"])
        if not _ID_RE.match(number):
            raise ServiceNowError(f"ServiceNow numbered the change request {number!r}, not CHG+7")
        cr = draft(number)
        if cr.id != number:
            raise BadInput(f"the draft change request has id {cr.id}, not {number}")
        self._store(sys_id, cr, message, by)
        return cr

    def update(self, cr: ChangeRequest, message: str, *, by: str | None = None) -> ChangeRequest:
        """Store a change request's new state: fields, a new attachment and a work note.

        Writing the state already stored changes nothing.

        Raises:
            BadInput: when no change request has that id.
        """
        row = self._find(cr.id)
        if row is None or row.get("correlation_display") != MARKER:
            raise BadInput(f"unknown change request {cr.id}")
        if self._record(row) == cr:
            return cr
        self._store(row["sys_id"], cr, message, by)
        return cr

    def get(self, id: str) -> ChangeRequest:
        """Return a change request.

        Raises:
            BadInput: when there is none with that id.
        """
        row = self._find(id)
        if row is None or row.get("correlation_display") != MARKER:
            raise BadInput(f"unknown change request {id}")
        return self._record(row)

    def list(self) -> builtins.list[ChangeRequest]:
        """Return every changeflow change request, sorted by id."""
        rows = self._result(
            "GET", _TABLE, params={"sysparm_query": f"correlation_display={MARKER}^ORDERBYnumber"}
        )
        return sorted((self._record(row) for row in rows), key=lambda cr: cr.id)

    def history(self, id: str) -> builtins.list[dict[str, str]]:
        """Return the work notes of a change request, newest first.

        Each has `commit` (the journal entry's sys_id), `author`, `date` (ISO 8601, UTC) and
        `message`, like `GitChangeManagement.history`; empty for an unknown id.
        """
        row = self._find(id)
        if row is None:
            return []
        entries = self._result(
            "GET",
            _JOURNAL,
            params={
                "sysparm_query": (
                    f"element_id={row['sys_id']}^element=work_notes^ORDERBYDESCsys_created_on"
                )
            },
        )
        return [
            {
                "commit": e["sys_id"],
                "author": e.get("sys_created_by", ""),
                "date": _iso(e.get("sys_created_on", "")),
                "message": e.get("value", "").strip(),
            }
            for e in entries
        ]


def _iso(stamp: str) -> str:
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()
    except ValueError:
        return stamp
