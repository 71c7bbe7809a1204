"""Support for the audit tests: a signed CR history to attack, on the real stack. A real git
change-management repo (a bare remote), the session's SeaweedFS locker (Object Lock on), a CI
key and a deploy key, a trust file naming both. Each attack runs on a copy of the remote
(`mirror`): the history is built once per module.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from blocks.change_management import GitChangeManagement
from blocks.cr_history import GitHistory
from blocks.memory import MemoryIncidents, MemoryInventory
from blocks.signing import StatementSigner, new_key, public_key
from changeflow.attestations import evidence_statement, vsa_statement
from changeflow.audit_package import AUDIT_PACKAGE
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
from changeflow.ports import EvidenceStore, Stores
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

    def on(self, remote: Path, cache: Path) -> Signed:
        """The same keys and locker, the change-management repo at `remote`."""
        changes = GitChangeManagement(remote_url=str(remote), cache_dir=str(cache))
        stores = Stores(self.stores.evidence, self.stores.inventory, changes, MemoryIncidents())
        return Signed(self.ci, self.deploy, self.trust, self.trust_file, stores, remote)

    def mirror(self, target: Path) -> Signed:
        """The same, on a new copy of the remote (every ref): what an attack may rewrite."""
        subprocess.run(
            ["git", "clone", "--mirror", "--quiet", str(self.remote), str(target / "remote.git")],
            check=True, capture_output=True,
        )  # fmt: skip
        return self.on(target / "remote.git", target / "cache")


def make_signed(
    root: Path, env: pytest.MonkeyPatch, remote: Path, evidence: EvidenceStore
) -> Signed:
    """Keys and a trust file under `root`, set in `env` as a deploy worker reads them, and the
    stores: `evidence` and the git change-management repo at `remote`."""
    ci_pem, deploy_pem = new_key(), new_key()
    since = utcnow() - timedelta(days=1)
    deploy_signs = [VSA, CR_HISTORY, AUDIT_PACKAGE]
    trust = TrustPolicy(
        keys=[
            public_key(ci_pem, name="ci", signs=[UNIT, PROVENANCE], not_before=since),
            public_key(deploy_pem, name="deploy", signs=deploy_signs, not_before=since),
        ]
    )
    (root / "deploy.pem").write_bytes(deploy_pem)
    trust_file = root / "trust.toml"
    trust_file.write_text(render_trust(trust))
    env.setenv("CHANGEFLOW_HOME", str(root / "home"))
    env.setenv("CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE", str(root / "deploy.pem"))
    env.setenv("CHANGEFLOW_TRUST_FILE", str(trust_file))
    changes = GitChangeManagement(remote_url=str(remote), cache_dir=str(root / "cache"))
    return Signed(
        StatementSigner(ci_pem),
        StatementSigner(deploy_pem),
        load_trust(trust_file.read_bytes()),
        trust_file,
        Stores(evidence, MemoryInventory(), changes, MemoryIncidents()),
        remote,
    )


def _write(s: Signed, before: ChangeRequest, after: ChangeRequest, why: str) -> ChangeRequest:
    """One CR write as the deploy flow makes it: the commit (signed), then its checkpoint."""
    written = s.changes.update(after, why, expected=revision(before))
    checkpoint(s.stores, written.id)
    return written


def file_signed_cr(
    s: Signed, *, emergency: bool = False, passing: bool = True, close: bool = True
) -> ChangeRequest:
    """A CR filed, decided and closed the way a deploy run does it, every record signed."""
    evidence = s.stores.evidence
    run = f"deploy-{uuid.uuid4().hex[:8]}"  # its summary's own key in the module's bucket
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
        scope=run,
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
            deployment_run_id=run,
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
    checkpoint(s.stores, cr.id)
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


Attack = Callable[[str], tuple[Signed, ChangeRequest]]


class History:
    """The module's signed stack and its CRs, each filed the first time a test asks for it:
    `passing` (closed successful), `failing` (not ready, left scheduled), `emergency` (left in
    review, unreviewed)."""

    def __init__(self, signed: Signed) -> None:
        self.signed = signed
        self._filed: dict[str, ChangeRequest] = {}

    def cr(self, kind: str) -> ChangeRequest:
        if kind not in self._filed:
            options = {
                "passing": {},
                "failing": {"passing": False, "close": False},
                "emergency": {"emergency": True},
            }[kind]
            self._filed[kind] = file_signed_cr(self.signed, **options)
        return self._filed[kind]


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
