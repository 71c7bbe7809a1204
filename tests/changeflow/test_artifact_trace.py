"""The trace of an artifact, built from records alone (plain pytest, no stores)."""

from __future__ import annotations

from datetime import date

from changeflow.evidence import make_evidence
from changeflow.incidents import Incident, incident_id
from changeflow.models import (
    Asset,
    ChangeRequest,
    ChangeState,
    CloseCategory,
    EvidenceResult,
    InventoryEntry,
    Severity,
)
from changeflow.trace import artifacts_named, render_trace, trace_artifacts

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
TODAY = date(2026, 6, 1)


def _entry(sha: str, run: str) -> InventoryEntry:
    return InventoryEntry(
        name="app/bin", artifact=f"s3://b/{sha}", version="1", type="file", sha256=sha,
        repository_url="https://example.com/app", commit_sha="c" * 40, build_number=run,
        pipeline_run_id=run, provenance=f"artifact://app/bin@{sha}",
    )  # fmt: skip


def _cr(n: int, sha: str, environment: str, acceptance: list[str]) -> ChangeRequest:
    return ChangeRequest(
        id=f"CHG{n:07d}", environment=environment, region="r1", deployment_run_id="d",
        state=ChangeState.closed, close_category=CloseCategory.successful,
        bom={"app/bin": sha}, acceptance_evidence=acceptance,
    )  # fmt: skip


def _incident(sha: str, finding: str, due: date, state: str = "open") -> Incident:
    uri = f"artifact://app/bin@{sha}"
    return Incident.model_validate(
        {"id": incident_id(uri, "scan", finding), "asset_uri": uri, "tool": "scan",
         "finding_id": finding, "evidence_type_id": "x", "severity": Severity.low,
         "found": date(2026, 1, 1), "due": due, "evidence_id": "e", "state": state}
    )  # fmt: skip


def test_an_entry_name_traces_every_sha256_it_has_had_each_with_its_own_history() -> None:
    branches = {
        "master": {"app/bin": _entry(NEW, "ci-2")},
        "prod": {"app/bin": _entry(OLD, "ci-1")},
    }
    crs = [_cr(1, OLD, "staging", ["acc-1"]), _cr(2, NEW, "staging", ["acc-2"])]
    failing = make_evidence(
        evidence_type_id="com.ibm.unit_tests", result="failure", tool="pytest", scope="ci-2",
        assets=[Asset.for_uri(f"artifact://app/bin@{NEW}")],
    )  # fmt: skip
    incidents = [
        _incident(OLD, "A", date(2026, 5, 1)),
        _incident(OLD, "B", date(2026, 7, 1)),
        _incident(OLD, "C", date(2026, 5, 1), "closed"),
        _incident(NEW, "D", date(2026, 7, 1)),
    ]

    assert artifacts_named("app/bin", branches, crs) == [("app/bin", OLD), ("app/bin", NEW)]
    assert artifacts_named("CHG0000002", branches, crs) == [("app/bin", NEW)]
    assert artifacts_named(f"artifact://app/bin@{OLD}", branches, crs) == [("app/bin", OLD)]
    assert artifacts_named("nothing", branches, crs) == []

    trace = trace_artifacts(
        "app/bin", artifacts_named("app/bin", branches, crs), branches=branches,
        evidence={f"artifact://app/bin@{NEW}": [failing]}, crs=crs,
        results={"acc-1": EvidenceResult.success}, incidents=incidents, today=TODAY,
    )  # fmt: skip

    old, new = trace.artifacts
    assert [b.pipeline_run_id for b in old.builds] == ["ci-1"] and not old.builds[0].passed
    assert [(d.change_request, d.acceptance) for d in old.deployments] == [("CHG0000001", "passed")]
    # an acceptance record that could not be read counts as failed
    assert [(d.change_request, d.acceptance) for d in new.deployments] == [("CHG0000002", "failed")]
    assert sorted((i.finding_id, i.state) for i in old.incidents) == [
        ("A", "overdue"), ("B", "open"), ("C", "closed"),
    ]  # fmt: skip
    assert [(i.finding_id, i.state) for i in new.incidents] == [("D", "open")]
    text = render_trace(trace)
    assert "FAILED: com.ibm.unit_tests" in text and "FAILED: no evidence" in text
    assert render_trace(trace.model_copy(update={"artifacts": []})) == (
        "app/bin: no artifact recorded"
    )
