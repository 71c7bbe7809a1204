"""Writing the offline audit package (`changeflow.audit_package` says what is in it).

Everything is read through the stores (every read re-hashed) into a folder beside the target,
checked offline there (`blocks.audit_verify`), signed (the manifest, by the deploy key under
the trust file's `audit-package` kind) and renamed into place: a failed export leaves nothing
half-written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from blocks.change_management import GitChangeManagement
from blocks.checkpoints import Checkpoints
from blocks.commands import command_environment
from blocks.signing import StatementSigner, Trust
from blocks.ssh_signatures import openssh_public
from changeflow.audit_package import (
    AUDIT_PACKAGE,
    MANIFEST,
    MANIFEST_ENVELOPE,
    Manifest,
    manifest_statement,
)
from changeflow.canonical import digest, digest_hex
from changeflow.errors import BadInput, IntegrityError
from changeflow.models import ChangeRequest, utcnow
from changeflow.ports import Stores

__all__ = ["export_package", "hash_files"]


def hash_files(root: Path) -> dict[str, str]:
    """Every file below `root` but the manifest and its signature: relative path -> sha256."""
    return {
        p.relative_to(root).as_posix(): digest(p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() not in (MANIFEST, MANIFEST_ENVELOPE)
    }


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _bundle(changes: GitChangeManagement, target: Path) -> str | None:
    """A git bundle of the CR repo's branches (their signed commits); main's head."""
    changes.git.fetch()
    head = changes.git.resolve("refs/heads/main")
    if head is None:
        return None
    env = command_environment({"GIT_DIR": str(changes.git.path)})
    done = subprocess.run(
        ["git", "bundle", "create", "--quiet", str(target), "--branches"],
        capture_output=True,
        env=env,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise IntegrityError(f"git bundle failed: {done.stderr.decode(errors='replace').strip()}")
    return head


def _check_signer(trust: tuple[Trust, bytes] | None, signer: StatementSigner | None) -> None:
    """Refuse, before writing anything, a package its own trust file would not verify."""
    if trust is None:
        return
    if signer is None:
        raise BadInput(
            "audit export: a trust file is configured, so the package's manifest must be "
            "signed: set CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE"
        )
    if why := trust[0].policy.judge(AUDIT_PACKAGE, {signer.keyid}, utcnow()):
        raise BadInput(
            f"audit export: the deploy key cannot sign the manifest: {why} (add "
            f'"{AUDIT_PACKAGE}" to its signs in the trust file)'
        )


def _export_cr(w: _Writer, stores: Stores, cr: ChangeRequest) -> None:
    evidence = stores.evidence
    w.put(f"changes/{cr.id}.json", cr.to_json() + b"\n")
    ids = list(cr.acceptance_evidence)
    if cr.evidence_summary_url and cr.evidence_summary_sha256:
        summary = evidence.get_summary(cr.evidence_summary_url, cr.evidence_summary_sha256)
        w.put(f"summaries/{cr.id}.json", summary.to_json())
        ids += [i.evidence_id for i in summary.evidence]
        runs: set[str] = set()
        for record_id in dict.fromkeys(ids):
            if (w.root / f"evidence/{record_id}.json").is_file():
                continue
            try:
                record = evidence.get_evidence(record_id)
            except IntegrityError:
                continue  # an unreadable record: the summary lists it as failed evidence
            w.put(f"evidence/{record.id}.json", record.to_json())
            runs.add(record.origin.pipeline_run_id)
            if envelope := evidence.get_evidence_envelope(record.id):
                w.put(f"envelopes/evidence/{record.id}.json", envelope)
            for attachment in record.attachments:
                data = evidence.get_attachment(attachment.hash)
                w.put(f"attachments/{digest_hex(attachment.hash)}", data)
        wanted = set(summary.provenance)
        for run in sorted(r for r in runs if r):
            for envelope in evidence.get_provenance(run):
                if digest(envelope) in wanted:
                    w.put(f"envelopes/provenance/{digest_hex(digest(envelope))}.json", envelope)
    if cr.decision_attestation:
        w.put(
            f"envelopes/decisions/{cr.id}.json", evidence.get_attestation(*cr.decision_attestation)
        )
    try:
        found = Checkpoints(evidence).envelopes(cr.id)
    except BadInput:
        found = []
    for envelope in found:
        w.put(f"checkpoints/{cr.id}/{digest_hex(digest(envelope))}.json", envelope)


def export_package(
    stores: Stores,
    crs: list[ChangeRequest],
    scope: str,
    out: Path,
    trust: tuple[Trust, bytes] | None,
    signer: StatementSigner | None = None,
) -> Manifest:
    """Write the package of `crs` to the folder `out` (which must not exist or be empty).

    Args:
        stores: where the records are.
        crs: the CRs to export.
        scope: what was asked for (a CR id, `<environment>[/<region>]`).
        out: the package's folder.
        trust: the trust file and its bytes, when one is configured.
        signer: the key that signs the manifest (the deploy key); needed with a trust file.

    Raises:
        BadInput: when `out` holds files, there is nothing to export, or a trust file is
            configured and no key it lets sign `audit-package` is.
    """
    if not crs:
        raise BadInput(f"nothing to export for {scope}")
    _check_signer(trust, signer)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--output: {out} exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        w = _Writer(tmp)
        head = None
        if isinstance(stores.changes, GitChangeManagement):
            head = _bundle(stores.changes, tmp / "history.git.bundle")
        for cr in crs:
            _export_cr(w, stores, cr)
        if trust is not None:
            w.put("trust.toml", trust[1])
            for key in trust[0].policy.keys:
                w.put(
                    f"keys/{key.name}-{key.keyid[:12]}.pub",
                    f"{openssh_public(key.public)} {key.name}\n".encode(),
                )
        manifest = Manifest(
            scope=scope,
            change_requests=[c.id for c in crs],
            head=head,
            trust_sha256=trust[0].sha256 if trust else None,
        )
        from blocks.audit_verify import write_index

        manifest.files = hash_files(tmp)  # what the page lists: every file but itself
        write_index(tmp, manifest)
        manifest.files = hash_files(tmp)
        (tmp / MANIFEST).write_bytes(manifest.model_dump_json(indent=2).encode() + b"\n")
        if signer is not None:
            (tmp / MANIFEST_ENVELOPE).write_bytes(signer.sign(manifest_statement(manifest)))
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest
