"""Recording evidence and reading it back for a deployment."""

from __future__ import annotations

from prefect import get_run_logger, task

from blocks.signing import SigningRole, load_signer
from changeflow.canonical import canonical_json
from changeflow.evidence import make_evidence
from changeflow.models import Asset, Attachment, Evidence, EvidenceResult
from changeflow.ports import EvidenceStore
from changeflow.readiness import IMMUTABLE_STORAGE
from changeflow.reports import ReportFormat, ReportOutcome, Thresholds, parse_report
from changeflow.summary import EvidenceSummary, FoundEvidence
from tasks.io import IO
from tasks.signing import sign_evidence

__all__ = [
    "find_evidence",
    "gather_evidence",
    "read_evidence",
    "record_report",
    "record_storage_check",
    "store_summary",
    "verify_evidence",
]


@task(name="record-evidence", **IO)
def record_report(
    locker: EvidenceStore,
    *,
    report: bytes | None,
    label: str,
    fmt: ReportFormat,
    thresholds: Thresholds,
    evidence_type_id: str,
    tool: str,
    scope: str,
    assets: list[Asset],
    pipeline_id: str,
    pipeline_run_url: str | None = None,
    role: SigningRole = "ci",
) -> tuple[Evidence, ReportOutcome]:
    """Turn a report into evidence, keeping the raw report as its attachment.

    A missing report is failure evidence, never a pass. With a signing key configured, the
    record's signed envelope is stored beside it, signed with `role`'s key.
    """
    attachments: list[Attachment] = []
    if report is None:
        outcome = ReportOutcome(
            result=EvidenceResult.failure,
            summary=f"no report: the {tool} check left no {label}",
            findings=[],
            counts={},
        )
    else:
        outcome = parse_report(fmt, report, thresholds)
        attachments.append(locker.store_attachment_bytes(report, label))
    evidence = make_evidence(
        evidence_type_id=evidence_type_id,
        result=outcome.result,
        tool=tool,
        scope=scope,
        assets=assets,
        pipeline_id=pipeline_id,
        pipeline_run_url=pipeline_run_url,
        attachments=attachments,
        findings=outcome.findings,
        summary=outcome.summary,
    )
    # stored with its signature: a record is never found before the envelope that vouches for it
    envelope = sign_evidence(evidence, assets, load_signer(role=role))
    return locker.put_evidence(evidence, assets, envelope), outcome


@task(name="gather-evidence", **IO)
def gather_evidence(locker: EvidenceStore, asset_ids: list[str]) -> list[Evidence]:
    """Every readable evidence record about the assets (one LIST per asset), by id.

    What CI carries on from: a record that cannot be read is logged and left out, so its check
    runs again. A deployment reads through `find_evidence`, which reports such a record.
    """
    found = locker.find_evidence(asset_ids)
    for bad in found.unreadable:
        get_run_logger().warning("evidence %s cannot be read: %s", bad.evidence_id, bad.reason)
    return found.records


@task(name="find-evidence", **IO)
def find_evidence(locker: EvidenceStore, asset_ids: list[str]) -> FoundEvidence:
    """Every evidence record about the delta's assets, and those that cannot be read."""
    found = locker.find_evidence(asset_ids)
    for bad in found.unreadable:
        get_run_logger().warning("evidence %s cannot be read: %s", bad.evidence_id, bad.reason)
    return found


@task(name="store-summary", **IO)
def store_summary(locker: EvidenceStore, summary: EvidenceSummary) -> tuple[str, str]:
    """Store the deployment's evidence summary once; its url and sha256."""
    return locker.put_summary(summary)


@task(name="record-storage-check", **IO)
def record_storage_check(
    locker: EvidenceStore, scope: str, pipeline_id: str, assets: list[Asset]
) -> Evidence:
    """Check the locker's bucket and keep the answer as `com.ibm.immutable_storage` evidence.

    Success only when the bucket is versioned, locked and retains at least the configured days
    (the verdict of `changeflow.storage.judge_storage`); the check itself is the attachment.
    """
    check = locker.check_storage()
    attachment = locker.store_attachment_bytes(
        canonical_json(check.model_dump(mode="json")), "storage-check.json"
    )
    evidence = make_evidence(
        evidence_type_id=IMMUTABLE_STORAGE,
        result=EvidenceResult.success if check.ok else EvidenceResult.failure,
        tool="changeflow-locker-check",
        scope=scope,
        pipeline_id=pipeline_id,
        assets=assets,
        attachments=[attachment],
        summary=check.summary,
    )
    envelope = sign_evidence(evidence, assets, load_signer(role="deploy"))
    return locker.put_evidence(evidence, assets, envelope)


@task(name="read-evidence", **IO)
def read_evidence(locker: EvidenceStore, evidence_ids: list[str]) -> list[Evidence]:
    """Read evidence records by id, each re-hashed on the way."""
    return [locker.get_evidence(evidence_id) for evidence_id in evidence_ids]


@task(name="verify-evidence", **IO)
def verify_evidence(locker: EvidenceStore, evidence_ids: list[str]) -> list[str]:
    """Re-hash evidence records and their attachments; one line per one that does not verify.

    A deployment asks this of the records its CR relies on: an attachment replaced in the
    store since it was recorded (a new latest version under Object Lock) shows here.
    """
    broken = locker.verify_evidence(evidence_ids).broken
    for line in broken:
        get_run_logger().warning("does not verify: %s", line)
    return broken
