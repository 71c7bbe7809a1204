"""The chain's rules as pure functions: transitions, windows, checkpoints, the decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from changeflow.chain import (
    CR_HISTORY,
    Checkpoint,
    HistoryCommit,
    checkpoint_problems,
    history_problems,
)
from changeflow.decision_check import decision_problems
from changeflow.evidence_trust import Opened
from changeflow.models import ChangeRequest, ChangeState, EvidenceResult
from changeflow.summary import EvidenceSummary, SummaryItem
from changeflow.trust import VSA, TrustedKey, TrustPolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = TrustedKey(
    name="deploy",
    keyid="1" * 64,
    public="2" * 64,
    signs=[CR_HISTORY, VSA],
    not_before=T0,
    not_after=T0 + timedelta(days=30),
)
TRUST = TrustPolicy(keys=[KEY])


def _cr(state: ChangeState, history: list[dict[str, str]], **extra: object) -> ChangeRequest:
    return ChangeRequest(
        id="CHG0000001",
        environment="prod",
        region="r1",
        deployment_run_id="d",
        state=state,
        history=history,
        **extra,  # type: ignore[arg-type]
    )


def _commit(sha: str, cr: ChangeRequest, days: int = 1, status: str = "G") -> HistoryCommit:
    return HistoryCommit(
        commit=sha * 40, date=T0 + timedelta(days=days), status=status, signer=KEY.keyid, record=cr
    )


FILED = {"from": "new", "to": "assess", "by": "c", "date": "d"}


def test_a_history_that_skips_the_lifecycle_is_named() -> None:
    skipped = {"from": "assess", "to": "closed", "by": "c", "date": "d"}
    commits = [
        _commit("b", _cr(ChangeState.closed, [FILED, skipped])),
        _commit("a", _cr(ChangeState.assess, [FILED])),
    ]
    assert history_problems("CHG0000001", commits, TRUST) == [
        f"CHG0000001: history.transition: commit {'b' * 12} moves it assess -> closed "
        "(it was assess)"
    ]


def test_a_commit_that_rewrites_the_recorded_history_is_named() -> None:
    other = {"from": "new", "to": "assess", "by": "someone else", "date": "d"}
    commits = [
        _commit("b", _cr(ChangeState.assess, [other])),
        _commit("a", _cr(ChangeState.assess, [FILED])),
    ]
    (problem,) = history_problems("CHG0000001", commits, TRUST)
    assert "rewrites the history the CR recorded before" in problem


def test_a_commit_outside_its_keys_window_is_named() -> None:
    late = _commit("a", _cr(ChangeState.assess, [FILED]), days=31)
    (problem,) = history_problems("CHG0000001", [late], TRUST)
    assert (
        problem.startswith("CHG0000001: history.signed:")
        and "outside its trusted window" in problem
    )


def test_without_a_cr_history_key_history_is_not_judged() -> None:
    unsigned = _commit("a", _cr(ChangeState.assess, [FILED]), status="N")
    vsa_only = TrustPolicy(keys=[KEY.model_copy(update={"signs": [VSA]})])
    assert history_problems("CHG0000001", [unsigned], vsa_only) == []
    assert history_problems("CHG0000001", [unsigned], TRUST) == [
        f"CHG0000001: history.signed: commit {'a' * 12} is not signed"
    ]


def test_a_checkpoint_about_another_cr_or_untrusted_is_named() -> None:
    good = Checkpoint(change_request="CHG0000001", commit="a" * 40, date=T0, keyids={KEY.keyid})
    stray = good.model_copy(update={"change_request": "CHG0000002"})
    unsigned = good.model_copy(update={"keyids": set()})
    found = checkpoint_problems(
        "CHG0000001", [good, stray, unsigned], "h" * 40, lambda c, h: True, TRUST
    )
    assert len(found) == 2
    assert "is about CHG0000002" in found[0] and "no valid signature" in found[1]


def _summary(result: EvidenceResult) -> EvidenceSummary:
    return EvidenceSummary(
        scope="s",
        environment="prod",
        region="r1",
        assets={"a" * 64: "artifact://x@sha256:" + "0" * 64},
        evidence=[
            SummaryItem(
                evidence_id="e" * 64,
                evidence_type_id="com.ibm.unit_tests",
                asset_id="a" * 64,
                asset_uri="artifact://x@sha256:" + "0" * 64,
                result=result,
                date=T0,
                tool="t",
                scope="s",
            )
        ],
    )


def test_a_passed_decision_its_summary_does_not_support_is_named() -> None:
    policy = {"checks": [{"evidence_type_id": "com.ibm.unit_tests", "level": "required"}]}
    from changeflow.canonical import canonical_json, digest

    cr = _cr(
        ChangeState.closed,
        [],
        deployment_ready=True,
        policy=policy,
        policy_digest=digest(canonical_json(policy)),
        evidence_summary_url="memory://s",
        evidence_summary_sha256="sha256:" + "5" * 64,
        decision_attestation=("memory://v", "sha256:" + "6" * 64),
    )
    statement = {
        "predicateType": "https://slsa.dev/verification_summary/v1",
        "subject": [],
        "predicate": {
            "timeVerified": "2026-01-02T00:00:00Z",
            "resourceUri": "urn:changeflow:change-request:CHG0000001",
            "policy": {"digest": {"sha256": cr.policy_digest.removeprefix("sha256:")}},  # type: ignore[union-attr]
            "inputAttestations": [{"uri": "memory://s", "digest": {"sha256": "5" * 64}}],
            "verificationResult": "PASSED",
        },
    }
    vsa = Opened(statement=statement, keyids={KEY.keyid})
    assert decision_problems(cr, vsa, _summary(EvidenceResult.success), TRUST) == []
    (problem,) = decision_problems(cr, vsa, _summary(EvidenceResult.failure), TRUST)
    assert problem.startswith("CHG0000001: decision.recomputed: the decision says PASSED")
    other = cr.model_copy(update={"deployment_ready": False})
    assert any(
        "it says PASSED, the CR says not ready" in p
        for p in decision_problems(other, vsa, None, TRUST)
    )
    assert decision_problems(cr, Opened(statement=statement), None, TRUST) == [
        "CHG0000001: decision.vsa: no valid signature by a key the trust file names"
    ]
