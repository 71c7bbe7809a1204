"""Incident steps: opening, closing and finding overdue incidents in the incident store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from prefect import task

from changeflow.incidents import (
    GracePeriods,
    Incident,
    deployment_incidents,
    found_in_environment,
    incidents_from_evidence,
    overdue,
    reconcile,
    scanned_pairs,
)
from changeflow.models import Asset, Evidence, InventoryEntry, asset_id
from changeflow.ports import IncidentStore
from tasks.io import IO

__all__ = [
    "incidents_in_environment",
    "overdue_incidents",
    "record_deployment_incidents",
    "record_incidents",
]


@task(name="record-incidents", **IO)
def record_incidents(
    incidents: IncidentStore,
    records: list[Evidence],
    artifacts: list[Asset],
    application: str,
    grace: GracePeriods,
    today: date,
    scope: str,
) -> list[Incident]:
    """Open an incident per artifact, tool and new failing finding; close those a rerun of the
    tool on the same artifact no longer reports.

    Incidents an earlier version kept per application (its repository url) are closed by the
    first build that runs their tool again: the artifacts' own incidents replace them.
    """
    uris = {a.id: a.uri for a in artifacts}
    # only the artifacts speak: the commit the same evidence is about is not deployed
    kept = [r.model_copy(update={"assets": [a for a in r.assets if a in uris]}) for r in records]
    kept = [r for r in kept if r.assets]
    observed = incidents_from_evidence(kept, uris, grace, today)
    scanned = scanned_pairs(kept, uris) | {(application, r.details.tool) for r in records}
    writes = reconcile(incidents.incidents(), observed, today, scanned=scanned)
    if writes:
        incidents.put_incidents(writes, f"incidents from {scope}")
    return writes


@task(name="incidents-in-environment", **IO)
def incidents_in_environment(
    incidents: IncidentStore,
    environment: str,
    entries: Mapping[str, InventoryEntry],
    previous: Mapping[str, InventoryEntry],
    grace: GracePeriods,
    today: date,
) -> list[Incident]:
    """Record the day the delta's open incidents were first found in `environment` (never
    reset) and return those overdue there: on the delta's artifacts, or kept per application
    by an earlier version.

    Args:
        incidents: the incident store.
        environment: where the delta is deployed.
        entries: the delta's entries by name.
        previous: the entries the environment's region holds now, by name.
        grace: the environment's grace periods.
        today: the day of the deployment.
    """
    stored = incidents.incidents()
    replacing = {
        e.provenance: previous[name].provenance if name in previous else None
        for name, e in entries.items()
    }
    changed = found_in_environment(stored, environment, replacing, grace, today)
    if changed:
        incidents.put_incidents(changed, f"found in {environment}")
    current = {i.id: i for i in [*stored, *changed]}.values()
    wanted = set(replacing) | {e.repository_url for e in entries.values()}
    return [i for i in overdue(current, today, environment) if i.asset_uri in wanted]


@task(name="record-deployment-incidents", **IO)
def record_deployment_incidents(
    incidents: IncidentStore,
    *,
    environment: str,
    region: str,
    change_request: str,
    entries: Mapping[str, InventoryEntry],
    previous: Mapping[str, InventoryEntry],
    deployed: bool,
    acceptance: Evidence | None,
    grace: GracePeriods,
    today: date,
) -> list[Incident]:
    """Open an incident per artifact for a failed deploy command or failing acceptance test,
    and close those of this place that a deployment which passed no longer reports."""
    artifacts = {asset_id(e.provenance): e.provenance for e in entries.values()}
    replaced = [p.provenance for name, p in previous.items() if name in entries]
    observed, scanned = deployment_incidents(
        environment=environment, region=region, change_request=change_request,
        artifacts=artifacts, deployed=deployed, acceptance=acceptance, replaced=replaced,
        grace=grace, today=today,
    )  # fmt: skip
    writes = reconcile(incidents.incidents(), observed, today, scanned=scanned)
    if writes:
        incidents.put_incidents(writes, f"deployment {change_request} to {environment}/{region}")
    return writes


@task(name="overdue-incidents", **IO)
def overdue_incidents(
    incidents: IncidentStore, asset_uris: list[str], today: date
) -> list[Incident]:
    """Open incidents past their due date, on the given assets (all when none are given)."""
    late = overdue(incidents.incidents(), today)
    return [i for i in late if not asset_uris or i.asset_uri in asset_uris]
