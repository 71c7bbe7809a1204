"""The promotion gate and an artifact's test deployments, as pure rules."""

from __future__ import annotations

from changeflow.gate import (
    deployments_of,
    earlier_failures,
    gate_promotion,
    judge_earlier_acceptance,
)
from changeflow.models import (
    ChangeRequest,
    ChangeState,
    CloseCategory,
    EvidenceResult,
    InventoryEntry,
)
from changeflow.readiness import Readiness

SHA = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _entry(sha: str = SHA) -> InventoryEntry:
    return InventoryEntry(
        name="app/bin", artifact="s3://x", version="1", type="file", sha256=sha,
        repository_url="https://example.com/app", commit_sha="c" * 40, build_number="1",
        pipeline_run_id="ci-1", provenance=f"artifact://app@{sha}",
    )  # fmt: skip


def _cr(
    n: int,
    region: str,
    category: CloseCategory = CloseCategory.successful,
    acceptance: list[str] | None = None,
    environment: str = "staging",
    sha: str = SHA,
) -> ChangeRequest:
    return ChangeRequest(
        id=f"CHG{n:07d}", environment=environment, region=region, deployment_run_id="d",
        state=ChangeState.closed, close_category=category, bom={"app/bin": sha},
        acceptance_evidence=acceptance or [],
    )  # fmt: skip


def _gate(crs: list[ChangeRequest], mode: str = "every_region", source: str = "staging"):  # type: ignore[no-untyped-def]
    results = {"ok": EvidenceResult.success, "bad": EvidenceResult.failure}
    return gate_promotion(
        {"app/bin": _entry()}, source=source, regions=["r1", "r2"], mode=mode,  # type: ignore[arg-type]
        crs=crs, results=results,
    )  # fmt: skip


def test_master_is_not_gated() -> None:
    assert _gate([], source="master").eligible == ["app/bin"]


def test_never_deployed_is_refused() -> None:
    decision = _gate([_cr(1, "r1", sha=OTHER)])
    assert decision.lines() == ["app/bin: never deployed to staging"]


def test_a_failed_acceptance_is_refused_with_its_cr() -> None:
    decision = _gate([_cr(1, "r1", CloseCategory.successful_issues, ["bad"])])
    assert decision.lines() == [
        "app/bin: deployed to staging/r1 under CHG0000001 but acceptance failed"
    ]


def test_an_unreadable_acceptance_record_counts_as_failed() -> None:
    assert "acceptance failed" in _gate([_cr(1, "r1", acceptance=["gone"])]).lines()[0]


def test_every_region_unless_relaxed() -> None:
    crs = [_cr(1, "r1", acceptance=["ok"])]
    assert _gate(crs).lines() == ["app/bin: deployed in 1 of 2 regions of staging (r1); not in r2"]
    assert _gate(crs, mode="any_region").eligible == ["app/bin"]
    assert _gate([*crs, _cr(2, "r2")]).eligible == ["app/bin"]


def test_closed_with_issues_is_not_tested() -> None:
    lines = _gate([_cr(1, "r1", CloseCategory.successful_issues)], mode="any_region").lines()
    assert lines == [
        "app/bin: deployed to staging/r1 under CHG0000001, closed successful_issues, not successful"
    ]


def test_earlier_acceptance_failures_block_by_default() -> None:
    crs = [_cr(1, "r1", CloseCategory.successful_issues, ["bad"]), _cr(2, "r1", environment="prod")]
    earlier = deployments_of(crs, {"app/bin": SHA}, {"bad": EvidenceResult.failure},
                             exclude_environment="prod")  # fmt: skip
    assert [(d.environment, d.acceptance) for d in earlier] == [("staging", "failed")]
    assert earlier_failures(earlier) == [
        "app/bin: acceptance failed in staging/r1 under CHG0000001"
    ]
    blocked = judge_earlier_acceptance(Readiness(ready=True), earlier, "block")
    assert not blocked.ready and blocked.reasons == earlier_failures(earlier)
    warned = judge_earlier_acceptance(Readiness(ready=True), earlier, "warn")
    assert warned.ready and warned.warnings == earlier_failures(earlier)
