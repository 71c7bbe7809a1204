"""Checking an audit package offline: no locker, no git server, no credentials.

Each hash is re-derived from a signed root (`changeflow.audit_package`): the bundle's commits
are checked with `ssh-keygen` against the trust file's `cr-history` keys, the CR at the branch
head must be the packaged one, its summary must have the sha256 it names, each record the id
it is filed under, each attachment its sha256, each envelope a trusted signature; and the
manifest catches a change to any other file. The rules are the live `verify`'s.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from blocks.commands import command_environment
from blocks.cr_history import GitHistory
from blocks.signing import open_envelope
from blocks.ssh_signatures import verify
from changeflow.approvals import approval_problems
from changeflow.audit_package import (
    MANIFEST,
    MANIFEST_ENVELOPE,
    Manifest,
    manifest_problems,
    render_index,
    signed_manifest,
)
from changeflow.canonical import digest
from changeflow.chain import (
    checkpoint_of,
    checkpoint_problems,
    emergency_problems,
    history_problems,
)
from changeflow.decision_check import decision_problems
from changeflow.errors import BadInput
from changeflow.evidence_trust import Opened, judge_evidence
from changeflow.models import ChangeRequest, Evidence
from changeflow.summary import EvidenceSummary
from changeflow.trust import TrustPolicy, load_trust, trust_digest

__all__ = ["PackageReport", "check_package", "write_index"]


@dataclass
class PackageReport:
    """What checking a package found, and what its page shows."""

    manifest: Manifest | None = None
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    crs: list[ChangeRequest] = field(default_factory=list)
    summaries: dict[str, EvidenceSummary] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    trust: TrustPolicy | None = None
    signed_by: str = ""


_Judge = tuple[TrustPolicy | None, str]


def _read(root: Path, path: str) -> bytes | None:
    target = root / path
    return target.read_bytes() if target.is_file() else None


def _history(root: Path, tmp: Path, report: PackageReport) -> GitHistory | None:
    bundle = root / "history.git.bundle"
    if not bundle.is_file():
        report.problems.append("package: history.git.bundle is missing")
        return None
    done = subprocess.run(
        ["git", "clone", "--bare", "--quiet", str(bundle), str(tmp / "history.git")],
        capture_output=True,
        env=command_environment({"GIT_TERMINAL_PROMPT": "0"}),
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        report.problems.append(
            f"package: the history bundle cannot be read: {why[-1] if why else ''}"
        )
        return None
    return GitHistory(tmp / "history.git")


def _evidence(
    root: Path, summary: EvidenceSummary, trust: TrustPolicy | None, cr_id: str
) -> tuple[int, list[str]]:
    problems: list[str] = []
    checked = 0
    for item in {
        i.evidence_id: i
        for i in summary.evidence
        if i.evidence_type_id != "changeflow.unreadable_evidence"
    }.values():
        where = f"{cr_id}: evidence {item.evidence_id[:12]}"
        data = _read(root, f"evidence/{item.evidence_id}.json")
        try:
            record = Evidence.model_validate_json(data or b"")
        except ValidationError:
            problems.append(f"{where}: evidence.hash: missing or not a record")
            continue
        checked += 1
        if record.id != item.evidence_id or not record.is_sealed():
            problems.append(f"{where}: evidence.hash: the record does not hash to its id")
        for attachment in record.attachments:
            body = _read(root, f"attachments/{attachment.hash.removeprefix('sha256:')}")
            checked += 1
            if body is None or digest(body) != attachment.hash:
                problems.append(
                    f"{where}: evidence.hash: attachment {attachment.hash[:19]} is missing "
                    "or altered"
                )
        if trust is not None and item.envelope:
            envelope = _read(root, f"envelopes/evidence/{record.id}.json")
            opened = open_envelope(envelope, trust) if envelope else None
            if envelope is not None and digest(envelope) != item.envelope:
                problems.append(
                    f"{where}: evidence.signed: its envelope is not the one the summary names"
                )
            elif why := judge_evidence(record, opened, trust):
                problems.append(f"{where}: evidence.signed: {why}")
    for sha in summary.provenance:
        body = _read(root, f"envelopes/provenance/{sha.removeprefix('sha256:')}.json")
        checked += 1
        if body is None or digest(body) != sha:
            problems.append(
                f"{cr_id}: evidence.provenance: provenance {sha[:19]} is missing or altered"
            )
    return checked, problems


def _check_cr(
    root: Path, cr: ChangeRequest, history: GitHistory | None, report: PackageReport
) -> None:
    trust, problems = report.trust, report.problems
    if history is not None:
        history = history.for_change(cr.id)
        commits = history.commits(cr.id, trust)
        report.checked += len(commits)
        problems += history_problems(cr.id, commits, trust)
        if not commits or commits[0].record != cr:
            problems.append(
                f"{cr.id}: history.head: the packaged CR is not the one its history holds"
            )
        found = (
            [
                checkpoint_of(open_envelope(p.read_bytes(), trust))
                for p in sorted((root / "checkpoints" / cr.id).glob("*.json"))
            ]
            if trust
            else []
        )
        report.checked += len(found)
        problems += checkpoint_problems(cr.id, found, history.head(), history.contains, trust)
    summary = None
    body = _read(root, f"summaries/{cr.id}.json")
    if cr.evidence_summary_sha256 and (body is None or digest(body) != cr.evidence_summary_sha256):
        problems.append(f"{cr.id}: summary.hash: its evidence summary is missing or altered")
    elif body is not None:
        summary = EvidenceSummary.model_validate_json(body)
        report.summaries[cr.id] = summary
        checked, found_problems = _evidence(root, summary, trust, cr.id)
        report.checked += checked + 1
        problems += found_problems
    vsa: Opened | str | None = None
    if cr.decision_attestation:
        envelope = _read(root, f"envelopes/decisions/{cr.id}.json")
        if envelope is None or digest(envelope) != cr.decision_attestation[1]:
            vsa = "its signed decision is missing or altered"
        elif trust is not None:
            opened = vsa = open_envelope(envelope, trust)
            result = (opened.statement.get("predicate") or {}).get("verificationResult")
            report.decisions[cr.id] = str(result)
        report.checked += 1
    problems += decision_problems(cr, vsa, summary, trust)
    problems += approval_problems(cr, verify)
    problems += emergency_problems(cr)


def _signature_problems(root: Path, report: PackageReport, trusts: list[_Judge]) -> list[str]:
    """`manifest.signed`: the manifest is the one a key each trust file lets sign
    `audit-package` signed; the signed one is then what the files are checked against."""
    judged = [(t, whose) for t, whose in trusts if t is not None]
    if not judged:
        return []  # no trust file: nothing is judged (as for records)
    envelope = _read(root, MANIFEST_ENVELOPE)
    if envelope is None:
        return [f"package: manifest.signed: the manifest is not signed ({MANIFEST_ENVELOPE} "
                "is missing)"]  # fmt: skip
    problems = []
    for trust, whose in judged:
        opened = open_envelope(envelope, trust)
        found = signed_manifest(opened, trust)
        if isinstance(found, str):
            problems.append(f"package: manifest.signed: {found} (judged by {whose})")
            continue
        report.signed_by = ", ".join(sorted(k.name for k in trust.keys if k.keyid in opened.keyids))
        if found != report.manifest:
            problems.append(
                f"package: manifest.signed: {MANIFEST} is not the manifest its signature covers"
            )
            report.manifest = found
    return problems


def check_package(
    root: Path, trust_file: Path | None = None, *, manifest: bool = True
) -> PackageReport:
    """Check a package offline; every problem is one line naming the CR (or file) and rule.

    Args:
        root: the package's folder.
        trust_file: the auditor's own trust file: the records are judged by it instead of
            the package's `trust.toml`, and the manifest's signature by both.
        manifest: whether to check the manifest and its signature too (not while the export
            writes them).

    Raises:
        BadInput: when `root` is not a package, or the trust file cannot be read.
    """
    report = PackageReport()
    if not (root / "changes").is_dir():
        raise BadInput(f"{root} is not an audit package (no changes/ folder)")
    auditors = load_trust(trust_file.read_bytes()) if trust_file else None  # bad input: raises
    packaged: TrustPolicy | None = None
    if (trust_bytes := _read(root, "trust.toml")) is not None:
        try:
            packaged = load_trust(trust_bytes)
        except BadInput as exc:
            report.problems.append(f"package: {exc}")
    report.trust = auditors or packaged
    if manifest:
        try:
            report.manifest = Manifest.model_validate_json(_read(root, MANIFEST) or b"")
        except ValidationError:
            report.problems.append(f"package: {MANIFEST} is missing or altered")
        judges = [(packaged, "the package's trust file"), (auditors, "your trust file")]
        report.problems += _signature_problems(root, report, judges)
        if report.manifest is not None:
            from blocks.audit_export import hash_files

            report.problems += manifest_problems(report.manifest, hash_files(root))
    trusted_bytes = trust_file.read_bytes() if trust_file else trust_bytes
    exported = report.manifest.trust_sha256 if report.manifest else None
    if report.manifest and trusted_bytes is not None and exported != trust_digest(trusted_bytes):
        report.problems.append("package: the trust file is not the one it was exported with")
    for path in sorted((root / "changes").glob("*.json")):
        try:
            report.crs.append(ChangeRequest.model_validate_json(path.read_bytes()))
        except ValidationError:
            report.problems.append(f"package: {path.name} is not a change request")
    if report.trust is None and trust_bytes is None and any(c.trust_sha256 for c in report.crs):
        # without one, nothing would be judged: a package stripped of it must not pass
        report.problems.append(
            "package: trust.toml is missing, and its CRs were decided under a trust file"
        )
    # a package of CRs kept without git history (ServiceNow) has no bundle: its manifest,
    # signed, says so (no head); while the export writes the page, whatever is there is read
    git_backed = report.manifest.head is not None if report.manifest else manifest
    with tempfile.TemporaryDirectory(prefix="changeflow-audit-") as tmp:
        history = (
            _history(root, Path(tmp), report)
            if git_backed or (root / "history.git.bundle").is_file()
            else None
        )
        if history is not None and report.manifest and report.manifest.head != history.head():
            # `head` is main's: the branch people browse; each CR's own is checked by its rules
            report.problems.append(
                "package: the history bundle is not the one it was exported with"
            )
        for cr in report.crs:
            _check_cr(root, cr, history, report)
    return report


def write_index(root: Path, manifest: Manifest) -> None:
    """Check the package being exported and write its `index.html` with the verdict."""
    report = check_package(root, manifest=False)
    page = render_index(
        manifest, report.crs, report.summaries, report.decisions, report.trust, report.problems
    )
    (root / "index.html").write_text(page, encoding="utf-8")
