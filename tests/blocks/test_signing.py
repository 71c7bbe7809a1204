"""Signed statements: DSSE as the spec writes it, the trust file, and which evidence counts."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from blocks.signing import StatementSigner, new_key, open_envelope, public_key
from changeflow.attestations import (
    CHANGEFLOW_EVIDENCE,
    PAYLOAD_TYPE,
    PROVENANCE_V1,
    STATEMENT_V1,
    TEST_RESULT,
    evidence_statement,
    provenance_evidence,
    provenance_statement,
    statement_evidence_id,
    subject,
)
from changeflow.errors import BadInput
from changeflow.evidence import make_evidence
from changeflow.evidence_trust import TrustedEvidence, judge_build, judge_evidence, pick_evidence
from changeflow.models import Asset, utcnow
from changeflow.readiness import ReadinessPolicy, deployment_ready
from changeflow.summary import summarize
from changeflow.trust import PROVENANCE, TrustPolicy, load_trust, render_trust

ARTIFACT = Asset.for_uri("artifact://app.bin@sha256:" + "ab" * 32)


def _pae(payload_type: str, body: bytes) -> bytes:
    # DSSE v1, written from the spec: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def _spec_verify(envelope: bytes, public_hex: str) -> dict[str, object]:
    """An independent DSSE verifier: base64 payload and sig, ed25519 over the PAE."""
    doc = json.loads(envelope)
    body = base64.b64decode(doc["payload"])
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    for signature in doc["signatures"]:
        key.verify(base64.b64decode(signature["sig"]), _pae(doc["payloadType"], body))
    statement: dict[str, object] = json.loads(body)
    return statement


def _record(kind: str = "com.ibm.unit_tests", result: str = "success", minutes: int = 0):  # type: ignore[no-untyped-def]
    return make_evidence(
        evidence_type_id=kind,
        result=result,
        tool="t",
        scope="ci-1",
        assets=[ARTIFACT],
        date=utcnow() - timedelta(minutes=minutes),
    )


def _trust(pem: bytes, signs: list[str], **window: object) -> TrustPolicy:
    window.setdefault("not_before", utcnow() - timedelta(days=1))
    return TrustPolicy(keys=[public_key(pem, name="ci", signs=signs, **window)])  # type: ignore[arg-type]


def test_an_envelope_verifies_with_a_verifier_written_from_the_dsse_spec() -> None:
    signer = StatementSigner(new_key())
    record = _record()
    envelope = signer.sign(evidence_statement(record, {ARTIFACT.id: ARTIFACT.uri}))
    assert json.loads(envelope)["payloadType"] == PAYLOAD_TYPE
    statement = _spec_verify(envelope, signer.public)
    assert statement["_type"] == STATEMENT_V1
    assert statement["predicateType"] == TEST_RESULT
    assert statement["subject"] == [{"name": "app.bin", "digest": {"sha256": "ab" * 32}}]
    assert statement_evidence_id(statement) == record.id
    # one flipped byte in the payload and the spec's verifier refuses it
    doc = json.loads(envelope)
    body = bytearray(base64.b64decode(doc["payload"]))
    body[-2] ^= 1
    doc["payload"] = base64.b64encode(bytes(body)).decode()
    with pytest.raises(InvalidSignature):
        _spec_verify(json.dumps(doc).encode(), signer.public)


def test_statements_per_record_kind() -> None:
    scan = _record("com.ibm.static_scan")
    statement = evidence_statement(scan, {})
    assert statement["predicateType"] == CHANGEFLOW_EVIDENCE
    assert statement_evidence_id(statement) == scan.id
    assert subject("https://example.com/app#" + "c" * 40)["digest"] == {"gitCommit": "c" * 40}
    provenance = provenance_statement(
        builder_id="https://ci.example",
        run_id="ci-7",
        repository_url="https://example.com/app",
        commit_sha="c" * 40,
        artifacts={"app.bin": "ab" * 32},
        evidence_ids=[scan.id],
        started=utcnow(),
        finished=utcnow(),
    )
    assert provenance["predicateType"] == PROVENANCE_V1
    assert provenance_evidence(provenance) == ("ci-7", {scan.id})
    deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[0]["digest"] == {"gitCommit": "c" * 40}


def test_the_trust_file_round_trips_and_bad_ones_are_one_line() -> None:
    policy = _trust(new_key(), ["com.ibm.unit_tests"])
    assert load_trust(render_trust(policy).encode()) == policy
    with pytest.raises(BadInput, match="not TOML"):
        load_trust(b"[[keys]")
    with pytest.raises(BadInput, match=r"keys\.0\.keyid"):
        load_trust(b'[[keys]]\nname = "x"\nkeyid = "zz"\n')


def test_only_a_trusted_key_for_the_type_in_its_window_counts() -> None:
    pem = new_key()
    signer = StatementSigner(pem)
    record = _record()
    opened = open_envelope(signer.sign(evidence_statement(record, {})), _trust(pem, ["x"]))
    assert judge_evidence(record, None, _trust(pem, ["x"])) == (
        "not signed: no envelope with the record or beside it"
    )
    why = judge_evidence(record, opened, _trust(pem, ["com.ibm.static_scan"]))
    assert why is not None and "may not sign com.ibm.unit_tests" in why
    rotated = _trust(pem, ["com.ibm.unit_tests"], not_after=utcnow() - timedelta(hours=1))
    why = judge_evidence(record, opened, rotated)
    assert why is not None and "outside its trusted window" in why
    assert judge_evidence(record, opened, _trust(pem, ["com.ibm.unit_tests"])) is None
    # an envelope moved onto another record vouches for nothing there
    other = _record(minutes=5)
    assert judge_evidence(other, opened, _trust(pem, ["com.ibm.unit_tests"])) == (
        "its envelope vouches for another record"
    )


def test_the_build_decides_and_an_untrusted_record_blocks() -> None:
    pem = new_key()
    signer = StatementSigner(pem)
    policy = _trust(pem, ["com.ibm.unit_tests", PROVENANCE])
    failed = _record(result="failure", minutes=10)
    later = _record(result="success")  # trusted, but not the entry's build's
    provenance = provenance_statement(
        builder_id="b",
        run_id="ci-1",
        repository_url="https://example.com/app",
        commit_sha="c" * 40,
        artifacts={"app.bin": "ab" * 32},
        evidence_ids=[failed.id],
        started=utcnow(),
        finished=utcnow(),
    )
    build = judge_build("ci-1", [open_envelope(signer.sign(provenance), policy)], policy)
    assert build.evidence == [failed.id] and build.problem is None
    trust = TrustedEvidence(builds={ARTIFACT.id: build})
    chosen, _ = pick_evidence([failed, later], ARTIFACT.id, trust)
    assert chosen["com.ibm.unit_tests"].id == failed.id
    forged = _record(result="success")
    trust = TrustedEvidence(builds={ARTIFACT.id: build}, untrusted={forged.id: "not signed"})
    summary = summarize(
        scope="deploy-1",
        environment="prod",
        region="r1",
        assets={ARTIFACT.id: ARTIFACT.uri},
        records=[failed, forged],
        trust=trust,
    )
    assert [u.evidence_id for u in summary.untrusted] == [forged.id]
    readiness = deployment_ready(summary, ReadinessPolicy(), today=utcnow().date())
    assert any("is not trusted: not signed" in r for r in readiness.reasons)
    assert any("com.ibm.unit_tests is failure" in r for r in readiness.reasons)
    nobody = judge_build("ci-2", [], policy)
    assert nobody.problem == "build ci-2: no trusted provenance: no provenance stored"


def test_the_runs_own_record_signed_by_an_untrusted_key_does_not_count() -> None:
    # a deploy worker handed the wrong key: its own storage check must not pass the gate
    check = make_evidence(
        evidence_type_id="com.ibm.immutable_storage",
        result="success",
        tool="changeflow-locker-check",
        scope="deploy-1",
        assets=[ARTIFACT],
    )
    trust = TrustedEvidence(untrusted={check.id: "signed by ci, not trusted for this type"})
    summary = summarize(
        scope="deploy-1",
        environment="prod",
        region="r1",
        assets={ARTIFACT.id: ARTIFACT.uri},
        records=[],
        run_evidence=[check],
        trust=trust,
    )
    assert [i.evidence_id for i in summary.evidence] == []
    assert [u.evidence_id for u in summary.untrusted] == [check.id]
    readiness = deployment_ready(summary, ReadinessPolicy(), today=utcnow().date())
    assert not readiness.ready
