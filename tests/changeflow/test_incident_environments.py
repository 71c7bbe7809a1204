"""Incidents per artifact and environment: first found there, due there, and what a deployment
opens and closes (issue 14)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from changeflow.incidents import (
    DEPLOY_FAILED,
    FoundIn,
    GracePeriods,
    Incident,
    deployment_incidents,
    found_in_environment,
    incident_id,
    overdue,
    reconcile,
)
from changeflow.models import (
    Evidence,
    EvidenceDetails,
    EvidenceOrigin,
    EvidenceResult,
    Finding,
    Severity,
    asset_id,
)
from changeflow.trace import Trace, trace_markdown

OLD = "artifact://app/bin@sha256:" + "a" * 64
NEW = "artifact://app/bin@sha256:" + "b" * 64
TODAY = date(2026, 11, 26)
PROD = GracePeriods(high=10)


def incident(uri: str = NEW, finding: str = "B105", **update: object) -> Incident:
    found = date(2026, 1, 1)
    return Incident(
        id=incident_id(uri, "bandit", finding), asset_uri=uri, tool="bandit", finding_id=finding,
        evidence_type_id="com.ibm.static_scan", severity=Severity.high, found=found,
        due=found + timedelta(days=30), evidence_id="e" * 64,
    ).model_copy(update=update)  # fmt: skip


def _deployment(
    environment: str,
    cr: str,
    uri: str,
    *,
    deployed: bool = True,
    acceptance: Evidence | None = None,
    replaced: tuple[str, ...] = (),
    today: date = TODAY,
) -> tuple[list[Incident], set[tuple[str, str]]]:
    return deployment_incidents(
        environment=environment, region="r1", change_request=cr, artifacts={asset_id(uri): uri},
        deployed=deployed, acceptance=acceptance, replaced=replaced, grace=PROD, today=today,
    )  # fmt: skip


def test_a_finding_is_first_found_in_an_environment_when_it_is_deployed_there() -> None:
    # CI found it long ago (its CI due date has passed), but prod sees it only today
    (dated,) = found_in_environment([incident()], "prod", {NEW: None}, PROD, TODAY)
    assert dated.environments == {"prod": FoundIn(found=TODAY, due=TODAY + timedelta(days=10))}
    assert dated.due_in("prod") == TODAY + timedelta(days=10)
    assert dated.due_in("staging") == dated.due  # never found there: CI's own
    assert overdue([dated], TODAY, "prod") == []
    assert overdue([dated], TODAY) == []  # the earliest of the environments it was found in
    assert "due 2026-12-06 in prod" in dated.line_in("prod")


def test_a_rerun_never_resets_the_first_found_date() -> None:
    then = FoundIn(found=date(2026, 1, 1), due=date(2026, 1, 11))
    known = incident(environments={"prod": then})
    assert found_in_environment([known], "prod", {NEW: None}, PROD, TODAY) == []
    assert overdue([known], TODAY, "prod") == [known]
    assert overdue([known], TODAY, "staging") == [known]  # CI's due date (2026-01-31) passed


def test_a_rebuild_carries_the_finding_on_with_its_first_found_date() -> None:
    """The artifact being replaced in prod had the same finding: its clock keeps running."""
    then = FoundIn(found=date(2026, 1, 1), due=date(2026, 1, 11))
    replaced = incident(OLD, environments={"prod": then})
    other = incident(OLD, finding="B999", environments={"prod": then})
    rebuilt, fresh = incident(NEW), incident(NEW, finding="B101")
    changed = found_in_environment(
        [replaced, other, rebuilt, fresh], "prod", {NEW: OLD}, PROD, TODAY
    )
    by_finding = {i.finding_id: i.environments["prod"].found for i in changed}
    assert by_finding == {"B105": date(2026, 1, 1), "B101": TODAY}
    # a finding the replaced artifact had closed does not carry its date on
    closed = replaced.model_copy(update={"state": "closed", "closed": date(2026, 2, 1)})
    (restarted,) = found_in_environment([closed, rebuilt], "prod", {NEW: OLD}, PROD, TODAY)
    assert restarted.environments["prod"].found == TODAY


def test_closed_incidents_and_other_artifacts_are_left_alone() -> None:
    closed = incident(state="closed", closed=TODAY)
    elsewhere = incident("artifact://lib@sha256:" + "c" * 64)
    assert found_in_environment([closed, elsewhere], "prod", {NEW: None}, PROD, TODAY) == []


def test_a_failed_deploy_opens_one_incident_per_artifact_and_a_passing_one_closes_it() -> None:
    observed, scanned = _deployment("prod", "CHG0000007", NEW, deployed=False, replaced=(OLD,))
    (failed,) = observed
    assert failed.id == incident_id(NEW, "changeflow-deploy@prod/r1", DEPLOY_FAILED)
    assert (failed.change_request, failed.severity) == ("CHG0000007", Severity.high)
    assert failed.environments["prod"].due == TODAY + timedelta(days=10)
    # a failed deploy did not replace anything: the old artifact's records are not touched
    assert scanned == {(NEW, "changeflow-deploy@prod/r1")}
    stored = reconcile([], observed, TODAY, scanned=scanned)

    later = TODAY + timedelta(days=1)
    observed, scanned = _deployment("prod", "CHG0000008", NEW, replaced=(OLD,), today=later)
    assert observed == []
    (closed,) = reconcile(stored, observed, later, scanned=scanned)
    assert (closed.id, closed.state, closed.closed) == (failed.id, "closed", later)


def _acceptance(result: EvidenceResult, uri: str = NEW) -> Evidence:
    findings = (
        [Finding(id="smoke::responds", severity=Severity.high)] if result == "failure" else []
    )
    return Evidence(
        date=datetime(2026, 11, 26, tzinfo=UTC), evidence_type_id="com.ibm.acceptance_tests",
        origin=EvidenceOrigin(scope="deploy-1"),
        details=EvidenceDetails(result=result, tool="pytest"), assets=[asset_id(uri)],
        findings=findings,
    ).sealed()  # fmt: skip


def test_failing_acceptance_opens_an_incident_of_that_place_closed_by_a_later_pass() -> None:
    failing = _acceptance(EvidenceResult.failure, OLD)
    observed, scanned = _deployment("staging", "CHG0000001", OLD, acceptance=failing)
    (failed,) = observed
    assert (failed.asset_uri, failed.tool, failed.finding_id) == (
        OLD, "pytest@staging/r1", "smoke::responds",
    )  # fmt: skip
    assert failed.environments == {"staging": FoundIn(found=TODAY, due=TODAY + timedelta(days=10))}
    stored = reconcile([], observed, TODAY, scanned=scanned)
    # prod passing does not close staging's failure
    passing = _acceptance(EvidenceResult.success, OLD)
    observed, scanned = _deployment("prod", "CHG0000002", OLD, acceptance=passing)
    assert reconcile(stored, observed, TODAY, scanned=scanned) == []
    # a new artifact deployed to staging/r1 that passes replaces the failing bytes there
    passing = _acceptance(EvidenceResult.success)
    observed, scanned = _deployment(
        "staging", "CHG0000003", NEW, acceptance=passing, replaced=(OLD,)
    )
    (closed,) = reconcile(stored, observed, TODAY, scanned=scanned)
    assert (closed.id, closed.state) == (failed.id, "closed")


def test_trace_markdown_cannot_be_closed_by_what_it_shows() -> None:
    markdown = trace_markdown(Trace(subject="app/```bin"), "Trace of `CHG0000001`")
    assert markdown.startswith("# Trace of \\`CHG0000001\\`\n\n````text\n")
    assert markdown.endswith("\n````\n") and "app/```bin: no artifact recorded" in markdown
