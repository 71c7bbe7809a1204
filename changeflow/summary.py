"""The evidence summary of a deployment: the latest evidence per asset and evidence type."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import Field

from changeflow.models import Evidence, EvidenceResult, Record, utcnow

__all__ = ["EvidenceSummary", "SummaryItem", "latest_evidence", "summarize"]


class SummaryItem(Record):
    """One piece of evidence as the summary presents it."""

    evidence_id: str
    evidence_type_id: str
    asset_id: str
    asset_uri: str
    result: EvidenceResult
    date: datetime
    tool: str
    scope: str
    summary: str | None = None
    attachments: list[str] = Field(default_factory=list, description="Attachment digests.")
    due_dates: list[str] = Field(
        default_factory=list, description="Due dates of the open, non-exempt findings."
    )


class EvidenceSummary(Record):
    """Evidence summary (format 2.0) of one deployment run, stored once and hashed into its CR."""

    version: str = "2.0"
    date: datetime = Field(default_factory=utcnow)
    scope: str = Field(description="The deployment run.")
    environment: str
    region: str
    assets: dict[str, str] = Field(default_factory=dict, description="Asset id -> uri.")
    evidence: list[SummaryItem] = Field(default_factory=list)

    def by_type(self) -> dict[str, list[SummaryItem]]:
        """Group the items by evidence type."""
        groups: dict[str, list[SummaryItem]] = {}
        for item in self.evidence:
            groups.setdefault(item.evidence_type_id, []).append(item)
        return groups

    @property
    def failed(self) -> list[SummaryItem]:
        return [i for i in self.evidence if i.result is not EvidenceResult.success]


def latest_evidence(records: Iterable[Evidence], asset: str) -> dict[str, Evidence]:
    """Pick, for one asset, the latest record of each evidence type.

    Ties on date are broken by id, so the choice never depends on listing order.
    """
    latest: dict[str, Evidence] = {}
    for record in records:
        if asset not in record.assets:
            continue
        current = latest.get(record.evidence_type_id)
        if current is None or (record.date, record.id) > (current.date, current.id):
            latest[record.evidence_type_id] = record
    return latest


def summarize(
    *,
    scope: str,
    environment: str,
    region: str,
    assets: dict[str, str],
    records: Iterable[Evidence],
    run_evidence: Iterable[Evidence] = (),
) -> EvidenceSummary:
    """Build the summary for the assets of a delta.

    Args:
        scope: the deployment run the summary belongs to.
        environment: target environment.
        region: target region.
        assets: asset id -> uri for every asset the delta touches.
        records: every evidence record found for those assets.
        run_evidence: the deployment run's own evidence, included as it is (and not again
            among `records`, where a rerun finds what its crashed run recorded).
    """
    own = list(run_evidence)
    own_ids = {o.id for o in own}
    pool = [r for r in records if r.id not in own_ids]
    items: list[SummaryItem] = []
    for aid in sorted(assets):
        for record in sorted(latest_evidence(pool, aid).values(), key=lambda r: r.evidence_type_id):
            items.append(_item(record, aid, assets[aid]))
    for record in own:
        for aid in record.assets:
            items.append(_item(record, aid, assets.get(aid, "")))
    return EvidenceSummary(
        scope=scope, environment=environment, region=region, assets=assets, evidence=items
    )


def _item(record: Evidence, aid: str, uri: str) -> SummaryItem:
    return SummaryItem(
        evidence_id=record.id,
        evidence_type_id=record.evidence_type_id,
        asset_id=aid,
        asset_uri=uri,
        result=record.details.result,
        date=record.date,
        tool=record.details.tool,
        scope=record.origin.scope,
        summary=record.details.summary,
        attachments=[a.hash for a in record.attachments],
        due_dates=sorted(
            f.due_date
            for f in record.findings
            if f.due_date and not f.has_exempt and f.found_status != "fixed"
        ),
    )
