"""The evidence summary of a deployment: the latest evidence per asset and evidence type.

A record that cannot be read back (not valid, naive or far-future date, does not hash to its
id) never breaks a summary: it is listed as failed evidence of the type `UNREADABLE`, with the
reason, and blocks auto-approval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import BaseModel, Field, ValidationError

from changeflow.evidence_trust import TrustedEvidence, pick_evidence
from changeflow.models import Evidence, EvidenceResult, Record, utcnow

__all__ = [
    "UNREADABLE",
    "UNTRUSTED_BUILD",
    "EvidenceSummary",
    "FoundEvidence",
    "SummaryItem",
    "UnreadableEvidence",
    "UntrustedItem",
    "found_evidence",
    "latest_evidence",
    "summarize",
    "unreadable_because",
]

UNREADABLE = "changeflow.unreadable_evidence"
"""The evidence type a summary lists a record that cannot be read under."""

UNTRUSTED_BUILD = "changeflow.provenance"
"""The type an untrusted item has when an entry's build has no trusted provenance."""


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
    envelope: str | None = Field(default=None, description="sha256 of its trusted envelope.")


class UntrustedItem(Record):
    """A record about an asset that does not count, and why (or a build without provenance)."""

    evidence_id: str
    evidence_type_id: str
    asset_id: str
    asset_uri: str
    result: EvidenceResult | None = None
    reason: str


class EvidenceSummary(Record):
    """Evidence summary (format 2.0) of one deployment run, stored once and hashed into its CR."""

    version: str = "2.0"
    date: datetime = Field(default_factory=utcnow)
    scope: str = Field(description="The deployment run.")
    environment: str
    region: str
    assets: dict[str, str] = Field(default_factory=dict, description="Asset id -> uri.")
    evidence: list[SummaryItem] = Field(default_factory=list)
    # judged under a trust file: only signed records count, the rest are listed here
    signed: bool | None = None
    untrusted: list[UntrustedItem] = Field(default_factory=list)
    provenance: list[str] = Field(
        default_factory=list, description="sha256 of each trusted build provenance relied on."
    )

    def by_type(self) -> dict[str, list[SummaryItem]]:
        """Group the items by evidence type."""
        groups: dict[str, list[SummaryItem]] = {}
        for item in self.evidence:
            groups.setdefault(item.evidence_type_id, []).append(item)
        return groups

    @property
    def failed(self) -> list[SummaryItem]:
        return [i for i in self.evidence if i.result is not EvidenceResult.success]


class UnreadableEvidence(BaseModel):
    """A record an asset's markers name that cannot be read back.

    Attributes:
        evidence_id: the id the markers name.
        assets: the ids of the assets whose markers name it.
        reason: why it cannot be read, on one line.
    """

    evidence_id: str
    assets: list[str]
    reason: str


class FoundEvidence(BaseModel):
    """Every record about some assets: those read (each once, by id) and those that cannot be."""

    records: list[Evidence] = Field(default_factory=list)
    unreadable: list[UnreadableEvidence] = Field(default_factory=list)


def found_evidence(
    listed: Mapping[str, list[str]], read: Mapping[str, Evidence | str]
) -> FoundEvidence:
    """Sort what a store read into records and unreadable ones.

    Args:
        listed: asset id -> the evidence ids its markers name.
        read: evidence id -> the record, or why it cannot be read.
    """
    records = [r for _, r in sorted(read.items()) if isinstance(r, Evidence)]
    unreadable = [
        UnreadableEvidence(
            evidence_id=eid,
            assets=sorted(aid for aid, ids in listed.items() if eid in ids),
            reason=" ".join(why.split()),
        )
        for eid, why in sorted(read.items())
        if isinstance(why, str)
    ]
    return FoundEvidence(records=records, unreadable=unreadable)


def _invalid_because(exc: ValueError) -> str:
    """Why a record did not validate, on one line: its first error's field and message."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "record"
        return f"{where}: {str(first['msg']).removeprefix('Value error, ')}"
    return " ".join(str(exc).split())


def unreadable_because(exc: Exception) -> str:
    """Why a record cannot be read, on one line: the store's message, and the validation error
    behind it when there is one (which field, and what is wrong with it)."""
    cause = exc.__cause__
    why = f"{exc}: {_invalid_because(cause)}" if isinstance(cause, ValueError) else str(exc)
    return " ".join(why.split())


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
    unreadable: Iterable[UnreadableEvidence] = (),
    trust: TrustedEvidence | None = None,
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
        unreadable: records found for those assets that cannot be read: each is listed as
            failed evidence of type `UNREADABLE`, its reason as the item's summary.
        trust: the trust verdicts (`changeflow.evidence_trust`): when given, only records a
            trusted key signed count, picked by the entry's build; the others are listed as
            untrusted. Without it, the latest record of each type counts (unsigned lockers).
    """
    own = list(run_evidence)
    own_ids = {o.id for o in own}
    pool = [r for r in records if r.id not in own_ids]
    items: list[SummaryItem] = []
    untrusted: list[UntrustedItem] = []
    envelopes = trust.envelopes if trust else {}
    builds = trust.builds if trust else {}
    for aid in sorted(assets):
        if trust is None:
            chosen = latest_evidence(pool, aid)
        else:
            chosen, refused = pick_evidence(pool, aid, trust)
            untrusted += [_untrusted(r, aid, assets[aid], why) for r, why in refused]
            build = trust.builds.get(aid)
            if build is not None and build.problem:
                untrusted.append(
                    UntrustedItem(
                        evidence_id=build.run_id,
                        evidence_type_id=UNTRUSTED_BUILD,
                        asset_id=aid,
                        asset_uri=assets[aid],
                        reason=build.problem,
                    )
                )
        for record in sorted(chosen.values(), key=lambda r: r.evidence_type_id):
            items.append(_item(record, aid, assets[aid], envelopes.get(record.id)))
    for record in own:
        # the run's own records count by the same rule: a key not trusted for them, no count
        why = trust.untrusted.get(record.id) if trust else None
        for aid in record.assets:
            if why is not None:
                untrusted.append(_untrusted(record, aid, assets.get(aid, ""), why))
            else:
                items.append(_item(record, aid, assets.get(aid, ""), envelopes.get(record.id)))
    now = utcnow()
    for bad in sorted(unreadable, key=lambda u: u.evidence_id):
        for aid in sorted(set(bad.assets) & set(assets)):
            items.append(
                SummaryItem(
                    evidence_id=bad.evidence_id,
                    evidence_type_id=UNREADABLE,
                    asset_id=aid,
                    asset_uri=assets[aid],
                    result=EvidenceResult.failure,
                    date=now,
                    tool="changeflow",
                    scope=scope,
                    summary=f"cannot be read: {bad.reason}",
                )
            )
    return EvidenceSummary(
        scope=scope,
        environment=environment,
        region=region,
        assets=assets,
        evidence=items,
        signed=None if trust is None else True,
        untrusted=untrusted,
        provenance=sorted({e for b in builds.values() for e in b.envelopes}),
    )


def _untrusted(record: Evidence, aid: str, uri: str, why: str) -> UntrustedItem:
    return UntrustedItem(
        evidence_id=record.id,
        evidence_type_id=record.evidence_type_id,
        asset_id=aid,
        asset_uri=uri,
        result=record.result,
        reason=why,
    )


def _item(record: Evidence, aid: str, uri: str, envelope: str | None = None) -> SummaryItem:
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
        envelope=envelope,
        due_dates=sorted(
            f.due_date
            for f in record.findings
            if f.due_date and not f.has_exempt and f.found_status != "fixed"
        ),
    )
