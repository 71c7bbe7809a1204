"""Reading an artifact's history: the CRs that deployed it and their acceptance results."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from prefect import task

from changeflow.change_ids import is_change_id
from changeflow.errors import BadInput, IntegrityError
from changeflow.evidence import uri_digest
from changeflow.gate import acceptance_ids
from changeflow.labels import deployed_label
from changeflow.models import Asset, ChangeRequest, Evidence, EvidenceResult, InventoryEntry
from changeflow.ports import ChangeManagement, EvidenceStore, Inventory, Stores
from changeflow.trace import Artifact, Trace, artifacts_named, trace_artifacts
from tasks.io import IO

__all__ = ["acceptance_results", "deployment_history", "read_deployment_trace", "read_trace"]


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
    """The CRs that deployed one of `bom`'s sha256s (name -> sha256), and the results of
    their acceptance evidence.

    Read through the backend's index by artifact digest (`ChangeManagement.deployments`):
    only those CRs, never every CR ever filed. The domain then matches name and sha256.
    """
    crs = changes.deployments(sorted(set(bom.values())))
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


Entries = dict[str, dict[str, InventoryEntry]]
"""Where builds are read from: a branch (or a commit) -> its entries, or some of them."""


def _named(stores: Stores, subject: str, at: Entries) -> list[Artifact]:
    """The artifacts `subject` names: a CR's bill of materials, else an entry name or artifact
    uri on the branches read, and an entry name's sha256 wherever a label says it is deployed
    (added to `at` under the label's commit; a build no branch or label holds any more is
    traced by its CR's id)."""
    if is_change_id(subject):
        try:
            return artifacts_named(subject, at, [stores.changes.get(subject)])
        except BadInput:
            pass  # no CR of that id: an entry may be called so
    found = set(artifacts_named(subject, at, []))
    if any(subject in (e.provenance, e.artifact) for es in at.values() for e in es.values()):
        return sorted(found)
    inventory = stores.inventory
    digest = uri_digest(subject)
    if digest is not None:  # an artifact uri no branch holds: as the CRs that deployed it had it
        for cr in stores.changes.deployments([digest]):
            for name in sorted(n for n, sha in cr.bom.items() if sha == digest):
                entry = _entry(inventory, name, cr.inventory_commit)
                if entry is not None and subject in (entry.provenance, entry.artifact):
                    found.add((entry.name, entry.sha256))
                    at.setdefault(cr.inventory_commit, {})[entry.name] = entry
        return sorted(found)
    for commit in sorted(set(inventory.labels().values())):
        try:
            entry = inventory.get(subject, commit)
        except BadInput:  # not an entry name
            break
        if entry is not None:
            found.add((entry.name, entry.sha256))
            at.setdefault(commit, {})[entry.name] = entry
    return sorted(found)


def _entry(inventory: Inventory, name: str, commit: str) -> InventoryEntry | None:
    """The entry `name` at `commit`; None when the inventory holds neither (any more)."""
    try:
        return inventory.get(name, commit) if commit else None
    except BadInput:
        return None


def _as_deployed(
    inventory: Inventory, crs: list[ChangeRequest], artifacts: list[Artifact], at: Entries
) -> None:
    """Add to `at` each artifact no branch read holds, as the inventory commit a CR deployed
    it from has it (its build), one entry read per artifact."""
    held = {(e.name, e.sha256) for entries in at.values() for e in entries.values()}
    missing = set(artifacts) - held
    for cr in crs:
        for name, sha in sorted(cr.bom.items()):
            if (name, sha) not in missing:
                continue
            entry = _entry(inventory, name, cr.inventory_commit)
            if entry is not None and entry.sha256 == sha:
                at.setdefault(cr.inventory_commit, {})[name] = entry
                missing.discard((name, sha))


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

    The CRs read are those that deployed the artifacts traced (`ChangeManagement.
    deployments`), and the branches those of master, `branches`, `environment` and the
    environments they deployed to: what a trace costs does not grow with the CRs ever filed.

    Args:
        stores: the run's stores.
        subject: an entry name, artifact uri or CR id (ignored with `environment`).
        environment: trace everything at this environment's branch (or, with `region`, at
            its `<region>_<env>_latest` label) instead.
        region: the region of `environment`.
        branches: the inventory branches to look for builds on (besides master).
        today: the day open incidents are judged overdue against.
    """
    inventory = stores.inventory
    at: Entries = {}

    def read(refs: Iterable[str]) -> None:
        for ref in sorted(set(refs) - set(at)):
            if inventory.resolve(ref) is not None:
                at[ref] = inventory.entries(ref)

    read(["master", *branches, *([environment] if environment else [])])
    if environment is None:
        artifacts = _named(stores, subject, at)
    else:
        ref = deployed_label(environment, region) if region else environment
        running = inventory.entries(ref) if inventory.resolve(ref) is not None else {}
        artifacts = sorted((e.name, e.sha256) for e in running.values())
    crs = stores.changes.deployments(sorted({sha for _, sha in artifacts}))
    read(cr.environment for cr in crs)  # where its builds were promoted to
    _as_deployed(inventory, crs, artifacts, at)
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


@task(name="read-trace", **IO)
def read_deployment_trace(stores: Stores, change_request: str, today: date) -> Trace:
    """`read_trace` of a deploy run's own CR, as a task: the run reads its records in one."""
    return read_trace(stores, change_request, today=today)
