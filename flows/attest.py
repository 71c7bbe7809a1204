"""The deploy flow's signed-records steps: judge the evidence's signatures, sign the decision.

Without a trust file configured (`CHANGEFLOW_TRUST_FILE`) evidence is not judged (every
record counts, as before signing) and the CR records no trust file; with one, only records a
trusted key signed count (`changeflow.evidence_trust`), and each CR decision is a signed
SLSA verification summary in the locker.
"""

from __future__ import annotations

from collections.abc import Iterable

from blocks.signing import Trust
from changeflow.evidence_trust import TrustedEvidence
from changeflow.models import ChangeRequest, Evidence, InventoryEntry, asset_id
from changeflow.ports import EvidenceStore
from changeflow.summary import EvidenceSummary, FoundEvidence
from tasks.signing import current_trust, judge_trust, sign_decision

__all__ = ["Judged", "attest_decision", "judge_found"]


class Judged:
    """The evidence a deploy run read, with the trust verdicts when a trust file is configured.

    Attributes:
        found: every record read (those the builds' provenance lists included).
        trust: the trust file, or None.
        verdicts: the verdicts, or None without a trust file.
    """

    def __init__(self, found: FoundEvidence, trust: Trust | None, verdicts: TrustedEvidence | None):
        self.found = found
        self.trust = trust
        self.verdicts = verdicts

    @property
    def counted(self) -> list[Evidence]:
        """The records that count (all of them without a trust file)."""
        bad = self.verdicts.untrusted if self.verdicts else {}
        return [r for r in self.found.records if r.id not in bad]

    def with_own(self, locker: EvidenceStore, own: list[Evidence]) -> TrustedEvidence | None:
        """The verdicts, with the run's own records judged too."""
        if self.trust is None or self.verdicts is None:
            return None
        _, theirs = judge_trust(locker, FoundEvidence(), {}, self.trust, own)
        return self.verdicts.model_copy(
            update={
                "untrusted": {**self.verdicts.untrusted, **theirs.untrusted},
                "envelopes": {**self.verdicts.envelopes, **theirs.envelopes},
            }
        )


def judge_found(
    locker: EvidenceStore, found: FoundEvidence, entries: Iterable[InventoryEntry]
) -> Judged:
    """Judge what a deploy run found under the worker's trust file (when it has one)."""
    trust = current_trust()
    if trust is None:
        return Judged(found, None, None)
    builds = {asset_id(e.provenance): e.pipeline_run_id for e in entries}
    judged, verdicts = judge_trust(locker, found, builds, trust, [])
    return Judged(judged, trust, verdicts)


def attest_decision(
    locker: EvidenceStore,
    cr: ChangeRequest,
    summary: EvidenceSummary,
    summary_url: str,
    summary_sha: str,
    trust: Trust | None,
) -> ChangeRequest:
    """`cr` with the trust file's sha256 and its signed decision (a VSA), when there is a key.

    The VSA's inputs are the summary and every envelope it relied on (`urn:changeflow:...`
    names each: evidence by id, provenance by digest).
    """
    if trust is None:
        return cr
    inputs = {summary_url: summary_sha}
    inputs |= {
        f"urn:changeflow:evidence:{i.evidence_id}": i.envelope
        for i in summary.evidence
        if i.envelope
    }
    inputs |= {f"urn:changeflow:provenance:{p}": p for p in summary.provenance}
    stored = sign_decision(
        locker,
        change_request=cr.id,
        resource_uri=f"urn:changeflow:change-request:{cr.id}",
        policy_digest=cr.policy_digest or "",
        inputs=inputs,
        artifacts=cr.bom,
        passed=cr.deployment_ready,
    )
    return cr.model_copy(update={"trust_sha256": trust.sha256, "decision_attestation": stored})
