"""Reading an artifact's history: the CRs that deployed it and their acceptance results."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from prefect import task

from changeflow.errors import IntegrityError
from changeflow.gate import acceptance_ids
from changeflow.labels import deployed_label
from changeflow.models import Asset, ChangeRequest, Evidence, EvidenceResult, InventoryEntry
from changeflow.ports import ChangeManagement, EvidenceStore, Stores
from changeflow.trace import Trace, artifacts_named, trace_artifacts
from tasks.io import IO

__all__ = ["acceptance_results", "deployment_history", "read_trace"]


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


def _evidence_about(evidence: EvidenceStore, uris: set[str]) -> dict[str, list[Evidence]]:
    """Asset uri -> the readable evidence about it (an unreadable record is left out)."""
    found: dict[str, list[Evidence]] = {}
    for uri in sorted(uris):
        try:
            asset = Asset.for_uri(uri)
        except ValueError:  # a provenance that is no asset uri has no evidence kept under it
            continue
        found[uri] = evidence.find_evidence([asset.id]).records
    return found


def read_trace(
    stores: Stores,
    subject: str,
    *,
    environment: str | None = None,
    region: str | None = None,
    branches: Iterable[str] = (),
    today: date,
) -> Trace:
    """Read the records a trace needs and let the domain build it.

    Args:
        stores: the run's stores.
        subject: an entry name, artifact uri or CR id (ignored with `environment`).
        environment: trace everything at this environment's branch (or, with `region`, at
            its `<region>_<env>_latest` label) instead.
        region: the region of `environment`.
        branches: the inventory branches to look for builds on (besides master).
        today: the day open incidents are judged overdue against.
    """
    inventory, crs = stores.inventory, stores.changes.list()
    refs = {"master", *branches, *(cr.environment for cr in crs)}
    if environment is not None:
        refs.add(environment)
    at: dict[str, dict[str, InventoryEntry]] = {
        ref: inventory.entries(ref) for ref in sorted(refs) if inventory.resolve(ref) is not None
    }
    if environment is None:
        artifacts = artifacts_named(subject, at, crs)
    else:
        ref = deployed_label(environment, region) if region else environment
        running = inventory.entries(ref) if inventory.resolve(ref) is not None else {}
        artifacts = sorted((e.name, e.sha256) for e in running.values())
    names = {name for name, _ in artifacts}
    wanted = {e.provenance for entries in at.values() for e in entries.values() if e.name in names}
    # one name may have had several sha256s: ask for each artifact's acceptance evidence
    ids = {i for name, sha in artifacts for i in acceptance_ids(crs, {name: sha})}
    return trace_artifacts(
        subject,
        artifacts,
        branches=at,
        evidence=_evidence_about(stores.evidence, wanted),
        crs=crs,
        results=acceptance_results(stores.evidence, sorted(ids)),
        incidents=stores.incidents.incidents(),
        today=today,
    )
