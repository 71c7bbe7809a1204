"""The ServiceNow incident store: changeflow incidents as records of ServiceNow's `incident` table.

One record per changeflow incident, found by `correlation_id` = the incident's id (and
`correlation_display = changeflow`, as every record changeflow writes). The fields carry what
ServiceNow users work with: short description, description, urgency and impact from the
severity (so ServiceNow derives the priority), state New while open and Resolved once the tool
no longer reports the finding (with a resolution code and notes, as ServiceNow requires), and
the due date in `due_date`. Every write appends a work note holding the full changeflow record
as JSON, so it round-trips; the latest such note written by the user who opened the record is
the record. Should two runs open the same incident at once, the record created first is the
one read and written from then on.

The changeflow record stays the truth for the flows: an incident resolved by hand in
ServiceNow while its finding is still reported is reopened by the next CI run.

Uses the Table API (`/api/now/table/incident`, `/api/now/table/sys_journal_field`).
"""

from __future__ import annotations

from pydantic import HttpUrl, ValidationError

from blocks.servicenow.client import LOGO, MARKER, ServiceNowBlock, servicenow_time
from changeflow.errors import IntegrityError
from changeflow.incidents import Incident
from changeflow.models import Severity

__all__ = ["NOTE", "URGENCY_IMPACT", "ServiceNowIncidents", "incident_fields"]

NOTE = "changeflow incident record"
"""The first line of the work notes that hold the changeflow record."""
_TABLE = "incident"
_PATH = f"/api/now/table/{_TABLE}"
_OPEN, _RESOLVED = "1", "6"
_CLOSE_CODE = "Solved (Permanently)"

URGENCY_IMPACT: dict[Severity, tuple[str, str]] = {
    Severity.critical: ("1", "1"),
    Severity.high: ("1", "2"),
    Severity.medium: ("2", "2"),
    Severity.low: ("3", "2"),
    Severity.info: ("3", "3"),
}
"""(urgency, impact) per severity: ServiceNow's default lookup makes them priorities 1 to 5."""


def incident_fields(incident: Incident) -> dict[str, str]:
    """Map an incident onto `incident` fields (without the work note)."""
    urgency, impact = URGENCY_IMPACT[incident.severity]
    opened = incident.state == "open"
    lines = [
        incident.description or incident.finding_id,
        "",
        f"asset: {incident.asset_uri}",
        f"tool: {incident.tool} ({incident.evidence_type_id})",
        f"finding: {incident.finding_id} ({incident.severity.value})",
        f"found: {incident.found}, due: {incident.due}",
        *(f"in {env}: found {f.found}, due {f.due}" for env, f in incident.environments.items()),
        f"evidence: {incident.evidence_id}",
        *([incident.url] if incident.url else []),
    ]
    return {
        "short_description": (
            f"changeflow: {incident.tool} {incident.finding_id} on {incident.asset_uri}"[:160]
        ),
        "description": "\n".join(lines),
        "urgency": urgency,
        "impact": impact,
        "state": _OPEN if opened else _RESOLVED,
        # the earliest of the environments it was found in (CI's own before any)
        "due_date": servicenow_time(incident.due_in()),
        "correlation_id": incident.id,
        "correlation_display": MARKER,
        "close_code": "" if opened else _CLOSE_CODE,
        "close_notes": (
            "" if opened else f"{incident.tool} no longer reports it (closed {incident.closed})"
        ),
    }


class ServiceNowIncidents(ServiceNowBlock):
    """Incidents kept in ServiceNow's `incident` table, one record per changeflow incident.

    Attributes:
        instance_url: e.g. `https://example.service-now.com`.
        username: API user for basic auth (with `password`).
        password: that user's password.
        token: an OAuth bearer token, instead of username and password.
        timeout: seconds per request.
    """

    _block_type_name = "changeflow ServiceNow Incidents"
    _block_type_slug = "changeflow-servicenow-incidents"
    _logo_url = LOGO
    _documentation_url = HttpUrl(
        "https://developer.servicenow.com/dev.do#!/reference/api/latest/rest/c_TableAPI"
    )
    _code_example = """
    ```python
    from blocks.servicenow import ServiceNowIncidents

    store = ServiceNowIncidents.load("BLOCK_NAME")
    for incident in store.incidents():
        print(incident.line)
    ```
    """
    _description = (
        "changeflow incidents in ServiceNow's incident table, one record per incident, with the "
        "full record in a work note on every update."
    )

    def _record(self, row: dict[str, str]) -> Incident:
        number, expected = row.get("number", ""), row.get("correlation_id", "")
        opener = row.get("sys_created_by", "")
        for note in self.work_notes(row["sys_id"]):
            if opener and note.get("sys_created_by", opener) != opener:
                continue  # only the notes of the user who opened it speak for changeflow
            first, _, body = note.get("value", "").partition("\n")
            if not first.startswith(NOTE):
                continue
            try:
                incident = Incident.model_validate_json(body)
            except ValidationError as exc:
                raise IntegrityError(
                    f"{number}: its changeflow record is not an incident: {exc.errors()[0]['msg']}"
                ) from None
            if incident.id != expected:
                raise IntegrityError(
                    f"{number} ({expected}): its changeflow record holds {incident.id}"
                )
            return incident
        raise IntegrityError(f"{number} in ServiceNow has no changeflow record in its work notes")

    def incidents(self) -> list[Incident]:
        """Return every changeflow incident, open and resolved, sorted by id.

        Raises:
            IntegrityError: for a record whose changeflow record is missing or not its own.
        """
        rows = self.rows(_TABLE, f"correlation_display={MARKER}^ORDERBYsys_created_on")
        first: dict[str, dict[str, str]] = {}
        for row in rows:
            first.setdefault(row.get("correlation_id", ""), row)
        return sorted((self._record(row) for row in first.values()), key=lambda i: i.id)

    def put_incidents(
        self, incidents: list[Incident], message: str, *, by: str | None = None
    ) -> None:
        """Open or update one record per incident, each with a work note holding it.

        ServiceNow writes records one at a time: a run that dies midway leaves the rest to the
        next reconciliation, which finds them still to be written.

        Args:
            incidents: the records to write (those `changeflow.incidents.reconcile` returns).
            message: why, on the work note's first line.
            by: who, named there too.
        """
        for incident in incidents:
            note = f"{NOTE}: {message}" + (f" (by {by})" if by else "")
            body = {
                **incident_fields(incident),
                "work_notes": f"{note}\n{incident.to_json().decode()}",
            }
            query = (
                f"correlation_id={incident.id}^correlation_display={MARKER}^ORDERBYsys_created_on"
            )
            found = self.rows(_TABLE, query, limit=1)
            if found:
                self.call("PATCH", f"{_PATH}/{found[0]['sys_id']}", json=body)
            else:
                self.call("POST", _PATH, json=body)
