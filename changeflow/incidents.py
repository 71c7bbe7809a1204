"""Incidents: the findings of failing evidence, tracked from the day they are found until fixed.

An incident's id is derived from the artifact, the tool and the finding, so the same finding
reported by every CI run is one incident, and its due date (found date plus the severity's grace
period) is not reset by a later run. It closes when the tool runs again on the same asset and no
longer reports it.

Each environment has a due date of its own: it runs from the day the finding was first found
there (an artifact carrying it was deployed there, or the finding was already on the artifact
that one replaces) plus that environment's grace period, and a rerun never resets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from changeflow.canonical import sha256_hex
from changeflow.models import Evidence, EvidenceResult, Record, Severity

__all__ = [
    "DEPLOY_FAILED",
    "FAILURE_FINDING",
    "FoundIn",
    "GracePeriods",
    "Incident",
    "deployment_incidents",
    "found_in_environment",
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


class FoundIn(Record):
    """When a finding was first found in one environment, and when it is due there."""

    found: date
    due: date


class Incident(Record):
    """One finding of one tool on one artifact, open until the tool stops reporting it.

    `found` and `due` are CI's (the first build that reported it, the strictest grace periods);
    `environments` holds each environment's own, from the first day it was found there.
    """

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
    environments: dict[str, FoundIn] = Field(default_factory=dict)
    change_request: str | None = Field(
        default=None, description="The CR whose deployment reported it (deploy failures)."
    )

    def due_in(self, environment: str | None = None) -> date:
        """The due date in `environment`; without one, the earliest of any environment it was
        found in (CI's own when it was found in none, or in one never recorded)."""
        if environment is None:
            return min((f.due for f in self.environments.values()), default=self.due)
        found = self.environments.get(environment)
        return self.due if found is None else found.due

    def line_in(self, environment: str | None = None) -> str:
        """The incident on one line with its due date in `environment` (see `due_in`)."""
        where = f" in {environment}" if environment in self.environments else ""
        return (
            f"{self.asset_uri}: incident {self.id} ({self.tool} {self.finding_id}, "
            f"{self.severity.value}) due {self.due_in(environment)}{where}"
        )

    @property
    def line(self) -> str:
        """The incident on one line, as the audit report lists it (its earliest due date)."""
        return self.line_in(None)

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


def overdue(
    incidents: Iterable[Incident], today: date, environment: str | None = None
) -> list[Incident]:
    """Return the open incidents past their due date (in `environment`: `Incident.due_in`),
    most overdue first."""
    late = [i for i in incidents if i.state == "open" and i.due_in(environment) < today]
    return sorted(late, key=lambda i: (i.due_in(environment), i.id))


def found_in_environment(
    incidents: Iterable[Incident],
    environment: str,
    replacing: Mapping[str, str | None],
    grace: GracePeriods,
    today: date,
) -> list[Incident]:
    """Record when each open incident of artifacts about to be deployed was first found in
    `environment`; return those that changed (a date already recorded is never reset).

    A finding the artifact it replaces in the environment also had (same tool, same finding id,
    still open there) was found there when that one's was: a rebuild that carries a finding on
    does not restart its clock. Anything else is found today.

    Args:
        incidents: every stored incident.
        environment: where the artifacts are being deployed.
        replacing: the uri of each artifact deployed -> the uri of the artifact of the same
            entry it replaces there (None for a new entry).
        grace: the environment's grace periods.
        today: the day of the deployment.
    """
    incidents = list(incidents)
    earlier: dict[tuple[str, str, str], date] = {}
    for i in incidents:
        if i.state == "open" and (seen := i.environments.get(environment)) is not None:
            earlier[(i.asset_uri, i.tool, i.finding_id)] = seen.found
    changed = []
    for i in sorted(incidents, key=lambda i: i.id):
        if i.state != "open" or i.asset_uri not in replacing or environment in i.environments:
            continue
        before = replacing[i.asset_uri]
        found = earlier.get((before or "", i.tool, i.finding_id), today)
        entry = FoundIn(found=found, due=grace.due(i.severity, found))
        dated = {**i.environments, environment: entry}
        changed.append(i.model_copy(update={"environments": dated}))
    return changed


DEPLOY_FAILED = "deploy-failed"
"""The finding id of an incident for a deploy command that failed."""


def deployment_incidents(
    *,
    environment: str,
    region: str,
    change_request: str,
    artifacts: Mapping[str, str],
    deployed: bool,
    acceptance: Evidence | None,
    replaced: Iterable[str],
    grace: GracePeriods,
    today: date,
) -> tuple[list[Incident], set[tuple[str, str]]]:
    """What one deployment observed, for `reconcile`: (incidents, (asset uri, tool) pairs run).

    A failed deploy command is one incident per artifact of the delta (tool
    `changeflow-deploy@<env>/<region>`, finding `deploy-failed`, severity high); each finding
    of failing acceptance evidence is one per artifact too (tool `<tool>@<env>/<region>`).
    The tools are named per place, so a failure in staging/us-south is closed only by a later
    deployment there that passes: the same artifact deployed again, or a deployment that
    replaced it (its old bytes no longer run there). Found today, in `environment`.

    Args:
        environment: where it deployed.
        region: the region.
        change_request: the CR it deployed under (kept on a deploy failure's incident).
        artifacts: asset id -> uri of the delta's artifacts.
        deployed: whether the deploy command succeeded.
        acceptance: the acceptance evidence it recorded, if any.
        replaced: the uris of artifacts the deployment replaced in the region.
        grace: the environment's grace periods.
        today: the day of the deployment.
    """
    place = f"@{environment}/{region}"
    deploy_tool = "changeflow-deploy" + place
    uris = sorted(set(artifacts.values()))
    gone = sorted(set(replaced)) if deployed else []
    scanned = {(uri, deploy_tool) for uri in [*uris, *gone]}
    observed: list[Incident] = []
    high = Severity.high
    where = {environment: FoundIn(found=today, due=grace.due(high, today))}
    if not deployed:
        observed += [
            Incident(
                id=incident_id(uri, deploy_tool, DEPLOY_FAILED),
                asset_uri=uri,
                tool=deploy_tool,
                finding_id=DEPLOY_FAILED,
                evidence_type_id="changeflow.deployment",
                severity=high,
                found=today,
                due=grace.due(high, today),
                evidence_id="",
                description=f"the deploy command failed under {change_request}",
                change_request=change_request,
                environments=where,
            )
            for uri in uris
        ]
    if acceptance is not None:
        tool = acceptance.details.tool + place
        placed = acceptance.model_copy(
            update={"details": acceptance.details.model_copy(update={"tool": tool})}
        )
        observed += [
            i.model_copy(
                update={
                    "environments": {environment: FoundIn(found=today, due=i.due)},
                    "change_request": change_request,
                }
            )
            for i in incidents_from_evidence([placed], artifacts, grace, today)
        ]
        scanned |= {(uri, tool) for uri in [*uris, *gone]}
    return observed, scanned
