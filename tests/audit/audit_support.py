"""Support for the audit tests: a signed CR history to attack. A real git change-management
repo (a bare remote), the in-memory locker, a CI key and a deploy key, a trust file naming both.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from blocks.change_management import GitChangeManagement
from blocks.cr_history import GitHistory
from blocks.memory import MemoryEvidenceStore, MemoryIncidents, MemoryInventory
from blocks.signing import StatementSigner, new_key, public_key
from changeflow.attestations import evidence_statement, vsa_statement
from changeflow.canonical import canonical_json, digest
from changeflow.chain import CR_HISTORY
from changeflow.change import transition
from changeflow.evidence import make_evidence
from changeflow.models import (
    Approval,
    Asset,
    ChangeRequest,
    ChangeState,
    ChangeType,
    CloseCategory,
    utcnow,
)
from changeflow.ports import Stores
from changeflow.readiness import EvidenceCheck, ReadinessPolicy
from changeflow.revisions import revision
from changeflow.summary import EvidenceSummary, SummaryItem
from changeflow.trust import PROVENANCE, VSA, TrustPolicy, load_trust, render_trust
from tasks.audit import checkpoint

UNIT = "com.ibm.unit_tests"


@dataclass
class Signed:
    """The keys, the trust file and the stores of one test."""

    ci: StatementSigner
    deploy: StatementSigner
    trust: TrustPolicy
    trust_file: Path
    stores: Stores
    remote: Path

    @property
    def changes(self) -> GitChangeManagement:
        assert isinstance(self.stores.changes, GitChangeManagement)
        return self.stores.changes


def make_signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bare: Path) -> Signed:
    ci_pem, deploy_pem = new_key(), new_key()
    since = utcnow() - timedelta(days=1)
    trust = TrustPolicy(
        keys=[
            public_key(ci_pem, name="ci", signs=[UNIT, PROVENANCE], not_before=since),
            public_key(deploy_pem, name="deploy", signs=[VSA, CR_HISTORY], not_before=since),
        ]
    )
    (tmp_path / "deploy.pem").write_bytes(deploy_pem)
    trust_file = tmp_path / "trust.toml"
    trust_file.write_text(render_trust(trust))
    monkeypatch.setenv("CHANGEFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE", str(tmp_path / "deploy.pem"))
    monkeypatch.setenv("CHANGEFLOW_TRUST_FILE", str(trust_file))
    changes = GitChangeManagement(remote_url=str(bare), cache_dir=str(tmp_path / "cache"))
    stores = Stores(
        evidence=MemoryEvidenceStore(),
        inventory=MemoryInventory(),
        changes=changes,
        incidents=MemoryIncidents(),
    )
    return Signed(
        StatementSigner(ci_pem),
        StatementSigner(deploy_pem),
        load_trust(trust_file.read_bytes()),
        trust_file,
        stores,
        bare,
    )


def _write(s: Signed, before: ChangeRequest, after: ChangeRequest, why: str) -> ChangeRequest:
    """One CR write as the deploy flow makes it: the commit (signed), then its checkpoint."""
    written = s.changes.update(after, why, expected=revision(before))
    checkpoint.fn(s.stores, written.id)
    return written


def file_signed_cr(
    s: Signed, *, emergency: bool = False, passing: bool = True, close: bool = True
) -> ChangeRequest:
    """A CR filed, decided and closed the way a deploy run does it, every record signed."""
    evidence = s.stores.evidence
    stored = evidence.store_attachment_bytes(b"unit test report", "report.txt")
    artifact = Asset.for_uri("artifact://app.bin@sha256:" + "ab" * 32)
    record = make_evidence(
        evidence_type_id=UNIT,
        result="success" if passing else "failure",
        tool="pytest",
        scope="ci-1",
        assets=[artifact],
        attachments=[stored],
    )
    envelope = s.ci.sign(evidence_statement(record, {artifact.id: artifact.uri}))
    evidence.put_evidence_envelope(record.id, envelope)
    evidence.put_evidence(record, [artifact])
    summary = EvidenceSummary(
        scope="deploy-1",
        environment="prod",
        region="r1",
        assets={artifact.id: artifact.uri},
        evidence=[
            SummaryItem(
                evidence_id=record.id,
                evidence_type_id=UNIT,
                asset_id=artifact.id,
                asset_uri=artifact.uri,
                result=record.result,
                date=record.date,
                tool="pytest",
                scope="ci-1",
                attachments=[stored.hash],
                envelope=digest(envelope),
            )
        ],
        signed=True,
    )
    url, sha = evidence.put_summary(summary)
    policy = ReadinessPolicy(checks=[EvidenceCheck(evidence_type_id=UNIT)]).model_dump(mode="json")
    policy_digest = digest(canonical_json(policy))
    bom = {"app": "sha256:" + "ab" * 32}

    def draft(cr_id: str) -> ChangeRequest:
        cr = ChangeRequest(
            id=cr_id,
            environment="prod",
            region="r1",
            type=ChangeType.emergency if emergency else ChangeType.standard,
            deployment_run_id="deploy-1",
            deployment_ready=passing,
            evidence_summary_url=url,
            evidence_summary_sha256=sha,
            policy=policy,
            policy_digest=policy_digest,
            bom=bom,
            trust_sha256=digest(s.trust_file.read_bytes()),
        )
        statement = vsa_statement(
            verifier_id="https://changeflow.dev/verifiers/deploy",
            change_request=cr_id,
            resource_uri=f"urn:changeflow:change-request:{cr_id}",
            policy_uri="changeflow:readiness-policy",
            policy_digest=policy_digest,
            inputs={url: sha, f"urn:changeflow:evidence:{record.id}": digest(envelope)},
            artifacts=bom,
            passed=passing,
            verified=utcnow(),
        )
        stored_vsa = evidence.put_attestation(s.deploy.sign(statement))
        filed = cr.model_copy(update={"decision_attestation": stored_vsa})
        return transition(filed, ChangeState.assess, by="changeflow", why="filed")

    cr = s.changes.create(draft, "filed by the deploy flow")
    checkpoint.fn(s.stores, cr.id)
    step = transition(cr, ChangeState.authorize, by="changeflow", why="assessed")
    if emergency:
        step = transition(step, ChangeState.scheduled, by="changeflow", why="emergency")
    else:
        approval = Approval(by="changeflow", decision="approved", automatic=True)
        step = transition(step, ChangeState.scheduled, by="changeflow", why="approved")
        step = step.model_copy(update={"approvals": [approval]})
    cr = _write(s, cr, step, "approved automatically")
    if not close:
        return cr
    step = transition(cr, ChangeState.implement, by="changeflow", why="deploying")
    step = transition(step, ChangeState.review, by="changeflow", why="deployed")
    if not emergency:
        step = transition(step, ChangeState.closed, by="changeflow", why="closed successful")
        step = step.model_copy(update={"close_category": CloseCategory.successful})
    return _write(s, cr, step, "deployed")


def git(remote: Path, *args: str, stdin: str | None = None) -> str:
    """Plain git on the bare remote, as someone with push rights and no key would run it."""
    env = {
        "GIT_DIR": str(remote),
        "GIT_AUTHOR_NAME": "mallory",
        "GIT_AUTHOR_EMAIL": "mallory@example.com",
        "GIT_COMMITTER_NAME": "mallory",
        "GIT_COMMITTER_EMAIL": "mallory@example.com",
        "PATH": "/usr/bin:/bin",
        "HOME": str(remote.parent),
    }
    done = subprocess.run(
        ["git", *args], input=stdin, capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def branch_of(remote: Path, cr_id: str) -> str:
    """The branch a CR's commits are on (its shard's, or main)."""
    return GitHistory(remote).for_change(cr_id).ref


def push_record(remote: Path, cr: ChangeRequest, parent: str | None, message: str) -> str:
    """Commit `cr` as changes/<id>.json onto `parent` straight in the remote (no key), move
    the CR's branch there (a force-push when `parent` is not the head); the new commit."""
    ref = branch_of(remote, cr.id)
    blob = git(remote, "hash-object", "-w", "--stdin", stdin=cr.to_json().decode() + "\n")
    base = git(remote, "rev-parse", f"{ref}^{{tree}}")
    listing = git(remote, "ls-tree", base, "changes/")
    changes_tree = git(remote, "rev-parse", f"{ref}:changes")
    entries = git(remote, "ls-tree", changes_tree).splitlines()
    name = f"{cr.id}.json"
    kept = [e for e in entries if not e.endswith("\t" + name)]
    new_changes = git(
        remote, "mktree", stdin="\n".join([*kept, f"100644 blob {blob}\t{name}"]) + "\n"
    )
    assert listing
    root = [e for e in git(remote, "ls-tree", base).splitlines() if not e.endswith("\tchanges")]
    tree = git(
        remote, "mktree", stdin="\n".join([*root, f"040000 tree {new_changes}\tchanges"]) + "\n"
    )
    args = ["commit-tree", tree, "-m", message, *(["-p", parent] if parent else [])]
    commit = git(remote, *args)
    git(remote, "update-ref", ref, commit)
    return commit
