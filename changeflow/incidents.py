"""Incidents: the findings of failing evidence, tracked from the day they are found until fixed.

An incident's id is derived from the asset, the tool and the finding, so the same finding
reported by every CI run is one incident, and its due date (found date plus the severity's grace
period) is not reset by a later run. It closes when the tool runs again on the same asset and no
longer reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from changeflow.canonical import sha256_hex
from changeflow.models import Evidence, EvidenceResult, Record, Severity

__all__ = [
    "FAILURE_FINDING",
    "GracePeriods",
    "Incident",
    "incident_id",
    "incidents_from_evidence",
    "overdue",
    "reconcile",
    "scanned_pairs",
]

FAILURE_FINDING = "result:failure"
"""The finding id of an incident for a failing evidence record that names no findings."""


class GracePeriods(BaseModel):
    """Days from when a finding is found to when it is due, by severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    critical: int = Field(default=30, gt=0)
    high: int = Field(default=30, gt=0)
    medium: int = Field(default=90, gt=0)
    low: int = Field(default=180, gt=0)
    info: int = Field(default=180, gt=0)

    def due(self, severity: Severity, found: date) -> date:
        """Return the due date of a finding of `severity` found on `found`."""
        days: int = getattr(self, severity.value)
        return found + timedelta(days=days)


def incident_id(asset_uri: str, tool: str, finding_id: str) -> str:
    """Return the deterministic id of the incident for one finding of one tool on one asset."""
    key = "\0".join((asset_uri, tool, finding_id)).encode("utf-8")
    return "INC-" + sha256_hex(key)[:24]


class Incident(Record):
    """One finding on one asset, open until the tool stops reporting it."""

    id: str = Field(pattern=r"^INC-[0-9a-f]{24}$")
    asset_uri: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    finding_id: str = Field(min_length=1)
    evidence_type_id: str
    severity: Severity
    state: Literal["open", "closed"] = "open"
    found: date
    due: date
    closed: date | None = None
    evidence_id: str = Field(description="The evidence that last reported it.")
    description: str | None = None
    url: str | None = None

    @property
    def line(self) -> str:
        """The incident on one line, as a CR's blocking reason and the audit report list it."""
        return (
            f"{self.asset_uri}: incident {self.id} ({self.tool} {self.finding_id}, "
            f"{self.severity.value}) due {self.due}"
        )

    @property
    def pair(self) -> tuple[str, str]:
        """(asset uri, tool): what must run again for this incident to be closed."""
        return self.asset_uri, self.tool


def _latest(
    records: Iterable[Evidence], uris: Mapping[str, str]
) -> dict[tuple[str, str, str], tuple[str, Evidence]]:
    # Only the latest record of each asset, evidence type and tool speaks for it: an older
    # failure superseded by a newer pass is fixed, not open.
    latest: dict[tuple[str, str, str], tuple[str, Evidence]] = {}
    for record in records:
        for aid in record.assets:
            uri = uris.get(aid, aid)
            key = (uri, record.evidence_type_id, record.details.tool)
            seen = latest.get(key)
            if seen is None or (record.date, record.id) > (seen[1].date, seen[1].id):
                latest[key] = (uri, record)
    return latest


def scanned_pairs(
    records: Iterable[Evidence], assets_uri_map: Mapping[str, str]
) -> set[tuple[str, str]]:
    """Return the (asset uri, tool) pairs the records show a tool ran on, passing or not."""
    return {(uri, tool) for uri, _, tool in _latest(records, assets_uri_map)}


def incidents_from_evidence(
    evidence_records: Iterable[Evidence],
    assets_uri_map: Mapping[str, str],
    grace: GracePeriods,
    today: date,
) -> list[Incident]:
    """Return the incidents the failing evidence reports, found today, sorted by id.

    Each non-exempt, not fixed finding of the latest failing record per asset, evidence type
    and tool is one incident per asset; a failing record without findings is one incident of
    severity high (finding id `result:failure`).

    Args:
        evidence_records: evidence, any order; passing and pending records are skipped.
        assets_uri_map: asset id → uri (an id missing here stands for itself).
        grace: grace periods giving the due dates.
        today: the found date of every incident returned.
    """
    found: dict[str, Incident] = {}
    for (uri, evidence_type, tool), (_, record) in sorted(
        _latest(evidence_records, assets_uri_map).items(), key=lambda kv: kv[0]
    ):
        if record.details.result is not EvidenceResult.failure:
            continue
        findings = [f for f in record.findings if not f.has_exempt and f.found_status != "fixed"]
        items: list[tuple[str, Severity, str | None, str | None]] = [
            (f.id, f.severity, f.description, f.url) for f in findings
        ]
        if not record.findings:
            items = [(FAILURE_FINDING, Severity.high, record.details.summary, None)]
        for finding_id, severity, description, url in items:
            iid = incident_id(uri, tool, finding_id)
            seen = found.get(iid)
            # The same finding under two evidence types of one tool: keep the more severe.
            if seen is not None and _rank(seen.severity) <= _rank(severity):
                continue
            found[iid] = Incident(
                id=iid,
                asset_uri=uri,
                tool=tool,
                finding_id=finding_id,
                evidence_type_id=evidence_type,
                severity=severity,
                found=today,
                due=grace.due(severity, today),
                evidence_id=record.id,
                description=description,
                url=url,
            )
    return [found[k] for k in sorted(found)]


def _rank(severity: Severity) -> int:
    return list(Severity).index(severity)


def reconcile(
    existing: Iterable[Incident],
    observed: Iterable[Incident],
    today: date,
    *,
    scanned: Iterable[tuple[str, str]] | None = None,
) -> list[Incident]:
    """Return the incidents to write so that storage matches what was observed.

    New findings are opened; open incidents observed again are left alone (their found and due
    dates stand); open incidents not observed although their tool ran again on their asset are
    closed today; a closed incident observed again is reopened as found today.

    Args:
        existing: the stored incidents.
        observed: `incidents_from_evidence` of the latest evidence.
        today: the closing date.
        scanned: (asset uri, tool) pairs that ran (`scanned_pairs`); default: only the pairs of
            `observed`, so a tool that now passes everywhere closes nothing until it is given.

    Returns:
        Only the records that changed, sorted by id.
    """
    stored = {i.id: i for i in existing}
    seen = {i.id: i for i in observed}
    ran = set(scanned) if scanned is not None else {i.pair for i in seen.values()}
    ran |= {i.pair for i in seen.values()}
    writes: list[Incident] = []
    for iid, incident in seen.items():
        before = stored.get(iid)
        if before is None or before.state == "closed":
            writes.append(incident)
    for iid, incident in stored.items():
        if incident.state == "open" and iid not in seen and incident.pair in ran:
            writes.append(incident.model_copy(update={"state": "closed", "closed": today}))
    return sorted(writes, key=lambda i: i.id)


def overdue(incidents: Iterable[Incident], today: date) -> list[Incident]:
    """Return the open incidents past their due date, most overdue first."""
    late = [i for i in incidents if i.state == "open" and i.due < today]
    return sorted(late, key=lambda i: (i.due, i.id))
