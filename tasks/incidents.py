"""Incident steps: opening, closing and finding overdue incidents in the incident store."""

from __future__ import annotations

from datetime import date

from prefect import task

from changeflow.incidents import (
    GracePeriods,
    Incident,
    incidents_from_evidence,
    overdue,
    reconcile,
    scanned_pairs,
)
from changeflow.models import Asset, Evidence
from changeflow.ports import IncidentStore
from tasks.io import IO

__all__ = ["overdue_incidents", "record_incidents"]


@task(name="record-incidents", **IO)
def record_incidents(
    incidents: IncidentStore,
    records: list[Evidence],
    subject: Asset,
    application: str,
    grace: GracePeriods,
    today: date,
    scope: str,
) -> list[Incident]:
    """Open an incident per new failing finding and close the ones a rerun no longer reports.

    Incidents belong to the application (its repository), not to one commit, so the next build
    that no longer reports a finding closes it.
    """
    records = [r.model_copy(update={"assets": [subject.id]}) for r in records]
    asset_uris = {subject.id: application}
    observed = incidents_from_evidence(records, asset_uris, grace, today)
    writes = reconcile(
        incidents.incidents(), observed, today, scanned=scanned_pairs(records, asset_uris)
    )
    if writes:
        incidents.put_incidents(writes, f"incidents from {scope}")
    return writes


@task(name="overdue-incidents", **IO)
def overdue_incidents(
    incidents: IncidentStore, asset_uris: list[str], today: date
) -> list[Incident]:
    """Open incidents past their due date, on the given assets (all when none are given)."""
    late = overdue(incidents.incidents(), today)
    return [i for i in late if not asset_uris or i.asset_uri in asset_uris]
