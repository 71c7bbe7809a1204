"""Issue 12, attacks 1-3 and key rotation, replayed on the real stack (SeaweedFS, git, Prefect).

CI's evidence is signed with a CI key and listed by the build's signed provenance; the deploy
worker judges it under a trust file and signs its own storage check and its decision. Each
attack is made with the bucket credentials every CI job carries, but without a trusted key.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from stack_support import new_bucket

from blocks import stores as config
from blocks.signing import StatementSigner, new_key, open_envelope, public_key
from changeflow.attestations import VSA_V1, evidence_statement, provenance_statement
from changeflow.change import deploy_pipeline
from changeflow.evidence import make_evidence
from changeflow.models import Asset, Evidence, InventoryEntry, Promotion, utcnow
from changeflow.readiness import DEFAULT_REQUIRED_TYPES, IMMUTABLE_STORAGE
from changeflow.requests import DeploymentRequest, RecordStores
from changeflow.trust import PROVENANCE, VSA, TrustPolicy, load_trust, render_trust
from flows.deploy_flow import DeploymentOutcome, deploy


class Keys:
    """A CI key and a deploy key, their PEM files and a trust file naming them."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.monkeypatch = root, monkeypatch
        self.ci_pem, self.deploy_pem = new_key(), new_key()
        self.ci, self.deploy = StatementSigner(self.ci_pem), StatementSigner(self.deploy_pem)
        (root / "deploy.pem").write_bytes(self.deploy_pem)
        self.trust(
            [
                public_key(self.ci_pem, name="ci", signs=self.ci_signs, not_before=_ago(30)),
                public_key(
                    self.deploy_pem, name="deploy", signs=self.deploy_signs, not_before=_ago(30)
                ),
            ]
        )
        # the deploy worker's configuration: its key and the trust file
        monkeypatch.setenv("CHANGEFLOW_SIGNING_KEY_FILE", str(root / "deploy.pem"))
        monkeypatch.setenv("CHANGEFLOW_TRUST_FILE", str(root / "trust.toml"))

    ci_signs: ClassVar[list[str]] = [*DEFAULT_REQUIRED_TYPES, PROVENANCE]
    deploy_signs: ClassVar[list[str]] = [IMMUTABLE_STORAGE, "com.ibm.acceptance_tests", VSA]

    def trust(self, keys: list) -> None:  # type: ignore[type-arg]
        (self.root / "trust.toml").write_text(render_trust(TrustPolicy(keys=keys)))


def _ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


@pytest.fixture
def keys(stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Keys:
    environments = tmp_path / "environments.toml"
    # a CR that is not ready waits a second for a person, then is cancelled
    environments.write_text(
        '[environments.prod]\nregions = ["r1"]\ndeploy = ["true"]\napproval_timeout_s = 1\n'
    )
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
    return Keys(tmp_path, monkeypatch)


def ship_signed(
    ci: StatementSigner, failing: str | None = None, when: datetime | None = None
) -> tuple[Asset, dict[str, Evidence]]:
    """What CI leaves: one artifact, its required evidence each signed by `ci` (the type
    `failing` failed), the build's signed provenance, the entry on master, promoted to prod."""
    locker, inventory = config.evidence_locker(None), config.inventory(None)
    stored = locker.store_attachment_bytes(b"artifact bytes", "app.bin")
    artifact = Asset.for_uri(f"artifact://app.bin@{stored.hash}")
    records = {}
    for kind in DEFAULT_REQUIRED_TYPES:
        evidence = make_evidence(
            evidence_type_id=kind,
            result="failure" if kind == failing else "success",
            tool="t",
            scope="ci-1",
            assets=[artifact],
            date=when,
        )
        locker.put_evidence_envelope(evidence.id, ci.sign(evidence_statement(evidence, {})))
        records[kind] = locker.put_evidence(evidence, [artifact])
    statement = provenance_statement(
        builder_id="https://ci.example",
        run_id="ci-1",
        repository_url="https://example.com/app",
        commit_sha="c" * 40,
        artifacts={"app.bin": stored.hash[7:]},
        evidence_ids=[r.id for r in records.values()],
        started=when or utcnow(),
        finished=when or utcnow(),
    )
    locker.put_provenance("ci-1", ci.sign(statement))
    inventory.add_entries(
        [
            InventoryEntry(
                name="app/bin",
                artifact=stored.url,
                version="1",
                type="file",
                sha256=stored.hash,
                repository_url="https://example.com/app",
                commit_sha="c" * 40,
                build_number="1",
                pipeline_run_id="ci-1",
                provenance=artifact.uri,
                app_artifacts={"filename": "app.bin"},
            )
        ]
    )
    inventory.promote(
        Promotion(
            id="p1",
            source="master",
            target="prod",
            assigned_to="rm",
            description="d",
            backout_plan="b",
        )
    )
    return artifact, records


def _deploy() -> DeploymentOutcome:
    request = DeploymentRequest(environment="prod", region="r1")
    return deploy(request, RecordStores.from_env())


def _cr(outcome: DeploymentOutcome):  # type: ignore[no-untyped-def]
    assert outcome.change_request
    return config.change_management(None).get(outcome.change_request)


def test_signed_evidence_approves_and_the_decision_is_a_signed_vsa(keys: Keys) -> None:
    ship_signed(keys.ci)
    outcome = _deploy()
    cr = _cr(outcome)
    assert cr.deployment_ready, cr.readiness_reasons
    assert cr.trust_sha256 and cr.trust_sha256.startswith("sha256:")
    assert cr.decision_attestation is not None
    url, sha = cr.decision_attestation
    envelope = config.evidence_locker(None).get_attestation(url, sha)
    policy = load_trust((keys.root / "trust.toml").read_bytes())
    opened = open_envelope(envelope, policy)
    assert opened.keyids == {keys.deploy.keyid}
    assert opened.statement["predicateType"] == VSA_V1
    predicate = opened.statement["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["resourceUri"].endswith(cr.id)
    assert predicate["policy"]["digest"]["sha256"] == (cr.policy_digest or "")[7:]
    # the summary and every envelope relied on: four CI records, the storage check, provenance
    assert len(predicate["inputAttestations"]) == 1 + 4 + 1 + 1


def test_a_future_dated_unsigned_success_does_not_make_the_cr_ready(keys: Keys) -> None:
    artifact, _ = ship_signed(keys.ci, failing="com.ibm.unit_tests")
    # attack 1: the bucket credentials, no trusted key: a "success" dated after the failure
    forged = make_evidence(
        evidence_type_id="com.ibm.unit_tests",
        result="success",
        tool="t",
        scope="ci-1",
        assets=[artifact],
        date=utcnow() + timedelta(minutes=4),
    )
    locker = config.evidence_locker(None)
    locker.put_evidence(forged, [artifact])
    # and one signed by a key the trust file does not name
    rogue = StatementSigner(new_key())
    signed = forged.model_copy(update={"date": utcnow() + timedelta(minutes=3)}).sealed()
    locker.put_evidence_envelope(signed.id, rogue.sign(evidence_statement(signed, {})))
    locker.put_evidence(signed, [artifact])
    cr = _cr(_deploy())
    assert not cr.deployment_ready, cr.model_dump_json()
    reasons = "\n".join(cr.readiness_reasons)
    assert "com.ibm.unit_tests is failure" in reasons
    assert f"{forged.id[:12]} is not trusted: not signed" in reasons
    assert f"{signed.id[:12]} is not trusted: no valid signature" in reasons


def test_a_hidden_marker_hides_nothing(keys: Keys) -> None:
    artifact, records = ship_signed(keys.ci, failing="com.ibm.static_scan")
    locker = config.evidence_locker(None)
    failed = records["com.ibm.static_scan"]
    # attack 2: a delete marker over the failure's marker (Object Lock keeps versions only)
    key = locker.layout.marker(artifact.id, failed.id)
    locker.client.delete_object(Bucket=locker.bucket, Key=key)
    assert failed.id not in locker.evidence_ids(artifact.id)
    cr = _cr(_deploy())
    assert not cr.deployment_ready, cr.model_dump_json()
    assert any("com.ibm.static_scan is failure" in r for r in cr.readiness_reasons)


def test_a_forged_storage_check_does_not_pass_an_unlocked_bucket(
    keys: Keys,
    s3_server,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    unlocked = s3_server.locker(new_bucket())
    unlocked.client.create_bucket(Bucket=unlocked.bucket)
    monkeypatch.setenv("CHANGEFLOW_S3_BUCKET", unlocked.bucket)
    artifact, _ = ship_signed(keys.ci)
    # attack 3: a storage check "recorded by a crashed run" of this deployment, all success
    forged = make_evidence(
        evidence_type_id=IMMUTABLE_STORAGE,
        result="success",
        tool="changeflow-locker-check",
        scope="deploy-forged",
        pipeline_id=deploy_pipeline("prod", "r1"),
        assets=[artifact],
    )
    config.evidence_locker(None).put_evidence(forged, [artifact])
    cr = _cr(_deploy())
    assert not cr.deployment_ready, cr.model_dump_json()
    reasons = "\n".join(cr.readiness_reasons)
    assert f"{forged.id[:12]} is not trusted" in reasons
    assert f"{IMMUTABLE_STORAGE} is failure" in reasons  # the run checked the bucket itself


def test_records_signed_before_a_rotation_still_verify(keys: Keys) -> None:
    ship_signed(keys.ci, when=utcnow() - timedelta(hours=2))
    # rotation an hour ago: the old CI key is trusted until then, a new one from then on
    rotated = utcnow() - timedelta(hours=1)
    new_ci = new_key()
    keys.trust(
        [
            public_key(
                keys.ci_pem,
                name="ci-old",
                signs=keys.ci_signs,
                not_before=_ago(30),
                not_after=rotated,
            ),
            public_key(new_ci, name="ci-new", signs=keys.ci_signs, not_before=rotated),
            public_key(
                keys.deploy_pem, name="deploy", signs=keys.deploy_signs, not_before=_ago(30)
            ),
        ]
    )
    cr = _cr(_deploy())
    assert cr.deployment_ready, cr.readiness_reasons


def test_the_old_key_signs_nothing_after_its_rotation(keys: Keys) -> None:
    ship_signed(keys.ci)  # signed now, by a key rotated out an hour ago
    keys.trust(
        [
            public_key(
                keys.ci_pem,
                name="ci-old",
                signs=keys.ci_signs,
                not_before=_ago(30),
                not_after=_ago(1 / 24),
            ),
            public_key(
                keys.deploy_pem, name="deploy", signs=keys.deploy_signs, not_before=_ago(30)
            ),
        ]
    )
    cr = _cr(_deploy())
    assert not cr.deployment_ready, cr.model_dump_json()
    assert any("outside its trusted window" in r for r in cr.readiness_reasons)
    assert any("no trusted provenance" in r for r in cr.readiness_reasons)


def _role_keys(keys: Keys, ci: bytes, deploy: bytes) -> None:
    """One process, two roles: CI's and deploy's key files, no shared key (as the demo runs)."""
    (keys.root / "ci.pem").write_bytes(ci)
    (keys.root / "deploy-role.pem").write_bytes(deploy)
    keys.monkeypatch.delenv("CHANGEFLOW_SIGNING_KEY_FILE")
    keys.monkeypatch.setenv("CHANGEFLOW_CI_SIGNING_KEY_FILE", str(keys.root / "ci.pem"))
    keys.monkeypatch.setenv(
        "CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE", str(keys.root / "deploy-role.pem")
    )


def _deploy_signers(keys: Keys) -> tuple[str | None, set[str], set[str]]:
    """Deploy once; the CR's readiness, the keys that signed its storage check and its VSA."""
    cr = _cr(_deploy())
    locker = config.evidence_locker(None)
    assert cr.evidence_summary_url and cr.evidence_summary_sha256 and cr.decision_attestation
    summary = locker.get_summary(cr.evidence_summary_url, cr.evidence_summary_sha256)
    policy = load_trust((keys.root / "trust.toml").read_bytes())
    # counted, or listed as untrusted when the key that signed it may not
    listed = [*summary.evidence, *summary.untrusted]
    check = next(i for i in listed if i.evidence_type_id == IMMUTABLE_STORAGE)
    envelope = locker.get_evidence_envelope(check.evidence_id)
    assert envelope is not None
    vsa = open_envelope(locker.get_attestation(*cr.decision_attestation), policy)
    ready = None if cr.deployment_ready else "; ".join(cr.readiness_reasons)
    return ready, open_envelope(envelope, policy).keyids, vsa.keyids


def test_the_deploy_role_signs_with_its_own_key_in_a_process_that_has_both(keys: Keys) -> None:
    _role_keys(keys, keys.ci_pem, keys.deploy_pem)
    ship_signed(keys.ci)
    # CI's records and provenance by the CI key; the run's storage check and decision by deploy's
    not_ready, check, vsa = _deploy_signers(keys)
    assert not_ready is None, not_ready
    assert check == vsa == {keys.deploy.keyid}


def test_the_trust_file_keeps_the_ci_key_from_signing_deploy_kinds(keys: Keys) -> None:
    # a worker misconfigured with the CI key as its deploy key: what it signs is not trusted
    _role_keys(keys, keys.ci_pem, keys.ci_pem)
    ship_signed(keys.ci)
    ready, check, vsa = _deploy_signers(keys)
    assert check == vsa == {keys.ci.keyid}
    # and what it signed does not count: the storage check is untrusted, the CR not ready
    assert ready is not None and "not trusted" in ready
    policy = load_trust((keys.root / "trust.toml").read_bytes())
    assert "may not sign" in (policy.judge(IMMUTABLE_STORAGE, check, utcnow()) or "")
    assert "may not sign" in (policy.judge(VSA, vsa, utcnow()) or "")
