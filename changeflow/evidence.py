"""Building evidence records and inventory entries from what a run observed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from changeflow.models import (
    Asset,
    Attachment,
    Evidence,
    EvidenceDetails,
    EvidenceOrigin,
    EvidenceResult,
    Finding,
    InventoryEntry,
    utcnow,
)

_DIST_VERSION = re.compile(r"^[A-Za-z0-9_.]+-(\d[^-]*?)(?:\.tar\.gz|\.zip|-.*)?$")

__all__ = [
    "DIGEST_URI",
    "artifact_uri",
    "inventory_entry",
    "make_evidence",
    "new_entries",
    "recorded_by",
    "uri_digest",
]

# the asset uri of a file artifact or an image: its name and the sha256 of its bytes
DIGEST_URI = re.compile(r"^(?:artifact|docker)://(?P<name>.+)@sha256:(?P<hex>[0-9a-f]{64})$")


def artifact_uri(filename: str, sha256: str) -> str:
    """The asset uri of a file artifact: `artifact://<name>@sha256:<hex>`."""
    return f"artifact://{filename}@{sha256}"


def uri_digest(uri: str) -> str | None:
    """The digest (`sha256:<hex>`) an artifact's or image's asset uri names, else None."""
    match = DIGEST_URI.match(uri)
    return f"sha256:{match['hex']}" if match else None


def make_evidence(
    *,
    evidence_type_id: str,
    result: EvidenceResult | str,
    tool: str,
    scope: str,
    assets: list[Asset],
    pipeline_id: str = "changeflow",
    pipeline_run_url: str | None = None,
    attachments: list[Attachment] | None = None,
    findings: list[Finding] | None = None,
    issues: list[str] | None = None,
    summary: str | None = None,
    date: datetime | None = None,
) -> Evidence:
    """Build a sealed evidence record (its id is the hash of its content)."""
    return Evidence(
        date=date or utcnow(),
        evidence_type_id=evidence_type_id,
        origin=EvidenceOrigin(
            scope=scope,
            pipeline_id=pipeline_id,
            pipeline_run_id=scope,
            pipeline_run_url=pipeline_run_url,
        ),
        details=EvidenceDetails(result=EvidenceResult(result), tool=tool, summary=summary),
        assets=[a.id for a in assets],
        attachments=attachments or [],
        findings=findings or [],
        issues=issues or [],
    ).sealed()


def new_entries(
    built: list[InventoryEntry], current: dict[str, InventoryEntry]
) -> list[InventoryEntry]:
    """The built entries worth recording: those whose artifact bytes differ from the current one.

    A rebuild that produced the same bytes keeps the existing entry, so a later delta shows only
    what really changed.
    """
    return [e for e in built if e.name not in current or current[e.name].sha256 != e.sha256]


def recorded_by(
    records: Iterable[Evidence], scope: str, asset_ids: Iterable[str]
) -> dict[tuple[str, str], Evidence]:
    """What a run already recorded, by (evidence type, tool): its latest record of each that is
    about every one of `asset_ids`.

    A rerun of the same build carries these on instead of running their checks again; a record
    about other artifacts (a rebuild that did not reproduce its bytes) is not carried on.
    """
    wanted = set(asset_ids)
    found: dict[tuple[str, str], Evidence] = {}
    for record in sorted(records, key=lambda r: (r.date, r.id)):
        if record.origin.scope == scope and wanted <= set(record.assets):
            found[(record.evidence_type_id, record.details.tool)] = record
    return found


def inventory_entry(
    *,
    name: str,
    spec_type: str,
    filename: str,
    stored: Attachment,
    commit: Asset,
    build_number: str,
    scope: str,
    provenance: str,
) -> InventoryEntry:
    """Describe a stored build artifact as an inventory entry.

    The version comes from a Python distribution's file name; other files take the build number.
    """
    repository_url, _, commit_sha = commit.uri.rpartition("#")
    match = _DIST_VERSION.match(filename)
    return InventoryEntry(
        name=name,
        artifact=stored.url,
        version=match.group(1) if match else build_number,
        type=spec_type,
        sha256=stored.hash,
        repository_url=repository_url,
        commit_sha=commit_sha,
        build_number=build_number,
        pipeline_run_id=scope,
        provenance=provenance,
        app_artifacts={"filename": filename, "size": stored.size or 0},
    )
