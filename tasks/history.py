"""Reading an artifact's history: the CRs that deployed it and their acceptance results."""

from __future__ import annotations

from prefect import task

from changeflow.errors import IntegrityError
from changeflow.gate import acceptance_ids
from changeflow.models import ChangeRequest, EvidenceResult
from changeflow.ports import ChangeManagement, EvidenceStore
from tasks.io import IO

__all__ = ["acceptance_results", "deployment_history"]


def acceptance_results(evidence: EvidenceStore, ids: list[str]) -> dict[str, EvidenceResult]:
    """Acceptance evidence id -> result; a record that does not verify is left out.

    Left out, it counts as failed (`changeflow.gate`): a tampered acceptance record must not
    let an artifact through, and must not stop a promotion's other entries being judged.
    """
    results: dict[str, EvidenceResult] = {}
    for evidence_id in ids:
        try:
            results[evidence_id] = evidence.get_evidence(evidence_id).result
        except IntegrityError:
            continue
    return results


@task(name="read-deployment-history", **IO)
def deployment_history(
    changes: ChangeManagement, evidence: EvidenceStore, bom: dict[str, str]
) -> tuple[list[ChangeRequest], dict[str, EvidenceResult]]:
    """Every CR, and the result of the acceptance evidence of those that deployed `bom`'s
    entries (name -> sha256)."""
    crs = changes.list()
    return crs, acceptance_results(evidence, acceptance_ids(crs, bom))
