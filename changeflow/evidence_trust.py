"""Which evidence counts: records a trusted key signed, picked by the build that made the entry.

The adapter opens each envelope (which keys' signatures verify, what the statement says); this
module decides what that is worth under the trust file:

- an evidence record counts only when its envelope vouches for exactly that record (its id)
  and a key the trust file lets sign its type, in that key's window, signed it;
- an artifact's CI evidence is what its build's signed provenance lists (read by id, so a
  hidden marker hides nothing, and a later record outside the provenance changes nothing);
- the types the provenance does not cover (the deployment's own evidence: storage checks,
  acceptance tests) are the latest trusted record of each type about the artifact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from changeflow.attestations import provenance_evidence, statement_evidence_id, statement_time
from changeflow.models import Evidence
from changeflow.trust import PROVENANCE, TrustPolicy

__all__ = [
    "BuildEvidence",
    "Opened",
    "TrustedEvidence",
    "judge_build",
    "judge_evidence",
    "pick_evidence",
]


class Opened(BaseModel):
    """An envelope as the adapter opened it.

    Attributes:
        digest: `sha256:<hex>` of the envelope's bytes, as stored.
        statement: the in-toto statement it carries (parsed, not yet trusted).
        keyids: the trust file's keys whose signatures over it verify.
        problem: why it could not be opened (malformed, not a statement), on one line.
    """

    digest: str = ""
    statement: dict[str, Any] = Field(default_factory=dict)
    keyids: set[str] = Field(default_factory=set)
    problem: str | None = None


class BuildEvidence(BaseModel):
    """What a CI build's trusted provenance says it produced.

    Attributes:
        run_id: the build (`pipeline_run_id` of its entries).
        evidence: the ids of the evidence records its trusted provenance lists.
        envelopes: `sha256:<hex>` of each trusted provenance envelope.
        problem: why no provenance of the build can be trusted, when none can.
    """

    run_id: str
    evidence: list[str] = Field(default_factory=list)
    envelopes: list[str] = Field(default_factory=list)
    problem: str | None = None


class TrustedEvidence(BaseModel):
    """The trust verdicts a summary is built with.

    Attributes:
        untrusted: evidence id -> why it does not count.
        envelopes: evidence id -> `sha256:<hex>` of the trusted envelope it counts by.
        builds: asset id -> the build that produced its entry.
    """

    untrusted: dict[str, str] = Field(default_factory=dict)
    envelopes: dict[str, str] = Field(default_factory=dict)
    builds: dict[str, BuildEvidence] = Field(default_factory=dict)


def judge_evidence(record: Evidence, opened: Opened | None, trust: TrustPolicy) -> str | None:
    """Why a record does not count (None when a trusted key signed exactly it)."""
    if opened is None:
        return "not signed: no envelope with the record or beside it"
    if opened.problem:
        return opened.problem
    if statement_evidence_id(opened.statement) != record.id:
        return "its envelope vouches for another record"
    when = statement_time(opened.statement)
    if when is None:
        return "its statement carries no time"
    return trust.judge(record.evidence_type_id, opened.keyids, when)


def judge_build(run_id: str, envelopes: Iterable[Opened], trust: TrustPolicy) -> BuildEvidence:
    """The evidence a build's trusted provenance lists (the union of every trusted one: a
    rerun of the same build signs what it added)."""
    ids: set[str] = set()
    trusted: list[str] = []
    reasons: list[str] = []
    for opened in envelopes:
        stated = provenance_evidence(opened.statement) if not opened.problem else None
        when = statement_time(opened.statement)
        if opened.problem or stated is None or when is None:
            reasons.append(opened.problem or "not a provenance statement")
            continue
        if stated[0] != run_id:
            reasons.append(f"provenance of another build ({stated[0]})")
            continue
        why = trust.judge(PROVENANCE, opened.keyids, when)
        if why:
            reasons.append(why)
            continue
        ids |= stated[1]
        trusted.append(opened.digest)
    if trusted:
        return BuildEvidence(run_id=run_id, evidence=sorted(ids), envelopes=sorted(trusted))
    problem = "; ".join(sorted(set(reasons))) or "no provenance stored"
    return BuildEvidence(run_id=run_id, problem=f"build {run_id}: no trusted provenance: {problem}")


def pick_evidence(
    records: Iterable[Evidence], asset: str, trust: TrustedEvidence
) -> tuple[dict[str, Evidence], list[tuple[Evidence, str]]]:
    """The records that count for one asset, by type, and those that do not, with why.

    The build's listed records decide the types they cover (the latest of a type among them,
    for a rerun that repeated a check); for every other type, the latest trusted record.
    """
    about = sorted((r for r in records if asset in r.assets), key=lambda r: (r.date, r.id))
    untrusted = [(r, trust.untrusted[r.id]) for r in about if r.id in trust.untrusted]
    counted = [r for r in about if r.id not in trust.untrusted]
    build = trust.builds.get(asset)
    listed = set(build.evidence) if build else set()
    chosen: dict[str, Evidence] = {}
    for record in counted:  # oldest first: the latest of each type stays
        if record.id in listed:
            chosen[record.evidence_type_id] = record
    covered = set(chosen)
    for record in counted:
        if record.id not in listed and record.evidence_type_id not in covered:
            chosen[record.evidence_type_id] = record
    return chosen, untrusted
