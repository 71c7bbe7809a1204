"""Incident steps: opening, closing and finding overdue incidents in change management."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger, task

from blocks.change_management import GitChangeManagement
from changeflow.incidents import (
    GracePeriods,
    Incident,
    incidents_from_evidence,
    overdue,
    reconcile,
    scanned_pairs,
)
from changeflow.models import Asset, Evidence
from tasks.io import IO

__all__ = ["overdue_incidents", "record_incidents"]


@task(name="record-incidents", **IO)
def record_incidents(
    changes: GitChangeManagement,
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
    if not hasattr(changes, "put_incidents"):
        get_run_logger().warning("incidents are kept only in a git change-management repo")
        return []
    records = [r.model_copy(update={"assets": [subject.id]}) for r in records]
    asset_uris = {subject.id: application}
    observed = incidents_from_evidence(records, asset_uris, grace, today)
    writes = reconcile(
        changes.incidents(), observed, today, scanned=scanned_pairs(records, asset_uris)
    )
    if writes:
        changes.put_incidents(writes, f"incidents from {scope}")
    return writes


@task(name="overdue-incidents", **IO)
def overdue_incidents(
    changes: GitChangeManagement, asset_uris: list[str], today: date
) -> list[Incident]:
    """Open incidents past their due date, on the given assets (all when none are given)."""
    if not hasattr(changes, "incidents"):
        return []
    late = overdue(changes.incidents(), today)
    return [i for i in late if not asset_uris or i.asset_uri in asset_uris]
