"""Incidents from failing evidence: deterministic ids, due dates, reconciling runs, overdue."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from changeflow.incidents import (
    FAILURE_FINDING,
    GracePeriods,
    Incident,
    incident_id,
    incidents_from_evidence,
    overdue,
    reconcile,
    scanned_pairs,
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

APP = "artifact://app@sha256:" + "a" * 64
LIB = "artifact://lib@sha256:" + "b" * 64
URIS = {asset_id(APP): APP, asset_id(LIB): LIB}
TODAY = date(2026, 11, 26)
GRACE = GracePeriods()


def evidence(
    result: EvidenceResult,
    findings: list[Finding] | None = None,
    *,
    tool: str = "bandit",
    kind: str = "com.ibm.static_scan",
    assets: tuple[str, ...] = (APP,),
    day: int = 1,
) -> Evidence:
    return Evidence(
        date=datetime(2026, 11, day, tzinfo=UTC),
        evidence_type_id=kind,
        origin=EvidenceOrigin(scope=f"ci-{day}"),
        details=EvidenceDetails(result=result, tool=tool, summary="2 findings"),
        assets=[asset_id(a) for a in assets],
        findings=findings or [],
    ).sealed()


def finding(fid: str, severity: Severity = Severity.high, **kw: object) -> Finding:
    return Finding(id=fid, severity=severity, **kw)  # type: ignore[arg-type]


def test_grace_periods_give_due_dates() -> None:
    assert [GRACE.due(s, TODAY) - TODAY for s in Severity] == [
        timedelta(days=d) for d in (30, 30, 90, 180, 180)
    ]
    assert GracePeriods(critical=7).due(Severity.critical, TODAY) == date(2026, 12, 3)
    with pytest.raises(ValidationError):
        GracePeriods(high=0)
    with pytest.raises(ValidationError):
        GracePeriods.model_validate({"urgent": 3})


def test_failing_findings_become_incidents_per_asset() -> None:
    record = evidence(
        EvidenceResult.failure,
        [
            finding("B105", Severity.critical, description="hardcoded password"),
            finding("B301", Severity.medium, url="https://x/B301"),
            finding("B404", Severity.low, has_exempt=True),
            finding("B101", Severity.info, found_status="fixed"),
        ],
        assets=(APP, LIB),
    )
    found = incidents_from_evidence([record], URIS, GRACE, TODAY)
    assert {(i.asset_uri, i.finding_id) for i in found} == {
        (APP, "B105"),
        (APP, "B301"),
        (LIB, "B105"),
        (LIB, "B301"),
    }
    critical = next(i for i in found if i.asset_uri == APP and i.finding_id == "B105")
    assert critical.id == incident_id(APP, "bandit", "B105")
    assert (critical.state, critical.found, critical.due) == ("open", TODAY, date(2026, 12, 26))
    assert critical.evidence_id == record.id and critical.description == "hardcoded password"
    medium = next(i for i in found if i.asset_uri == LIB and i.finding_id == "B301")
    assert medium.due == date(2027, 2, 24) and medium.url == "https://x/B301"
    assert [i.id for i in found] == sorted(i.id for i in found)


def test_ids_are_deterministic_and_distinct() -> None:
    record = evidence(EvidenceResult.failure, [finding("B105")])
    again = evidence(EvidenceResult.failure, [finding("B105")], day=9)
    first = incidents_from_evidence([record], URIS, GRACE, TODAY)
    second = incidents_from_evidence([again], URIS, GRACE, TODAY + timedelta(days=3))
    assert [i.id for i in first] == [i.id for i in second]
    assert incident_id(APP, "bandit", "B105") != incident_id(APP, "semgrep", "B105")
    assert incident_id(APP, "bandit", "B105") != incident_id(LIB, "bandit", "B105")
    # no ambiguity between the parts
    assert incident_id("a", "bc", "d") != incident_id("ab", "c", "d")


def test_failure_without_findings_is_one_incident() -> None:
    record = evidence(EvidenceResult.failure, tool="pytest", kind="com.ibm.unit_tests")
    (incident,) = incidents_from_evidence([record], URIS, GRACE, TODAY)
    assert incident.finding_id == FAILURE_FINDING and incident.severity is Severity.high
    assert incident.due == TODAY + timedelta(days=30) and incident.description == "2 findings"


def test_passing_pending_and_superseded_evidence_open_nothing() -> None:
    passing = evidence(EvidenceResult.success, [finding("B105", Severity.low)])
    pending = evidence(EvidenceResult.pending, tool="zap", kind="com.ibm.dynamic_scan")
    assert incidents_from_evidence([passing, pending], URIS, GRACE, TODAY) == []
    old_failure = evidence(EvidenceResult.failure, [finding("B105")], day=1)
    new_pass = evidence(EvidenceResult.success, day=2)
    assert incidents_from_evidence([new_pass, old_failure], URIS, GRACE, TODAY) == []
    assert scanned_pairs([new_pass, old_failure, pending], URIS) == {
        (APP, "bandit"),
        (APP, "zap"),
    }


def test_unknown_asset_id_stands_for_itself() -> None:
    record = evidence(EvidenceResult.failure, [finding("B105")])
    (incident,) = incidents_from_evidence([record], {}, GRACE, TODAY)
    assert incident.asset_uri == asset_id(APP)


def test_reconcile_opens_keeps_and_closes() -> None:
    run1 = evidence(EvidenceResult.failure, [finding("B105"), finding("B301", Severity.medium)])
    existing = reconcile([], incidents_from_evidence([run1], URIS, GRACE, TODAY), TODAY)
    assert [i.finding_id for i in sorted(existing, key=lambda i: i.finding_id)] == [
        "B105",
        "B301",
    ]
    # a week later B105 is still there, B301 is fixed, B999 is new
    later = TODAY + timedelta(days=7)
    run2 = evidence(EvidenceResult.failure, [finding("B105"), finding("B999", Severity.low)], day=8)
    observed = incidents_from_evidence([run2], URIS, GRACE, later)
    writes = {i.finding_id: i for i in reconcile(existing, observed, later)}
    assert set(writes) == {"B301", "B999"}  # B105 unchanged: not written, due date not reset
    assert (writes["B301"].state, writes["B301"].closed) == ("closed", later)
    assert writes["B301"].found == TODAY
    assert (writes["B999"].state, writes["B999"].found) == ("open", later)
    # nothing new: nothing to write
    stored = {i.id: i for i in existing} | {i.id: i for i in writes.values()}
    assert reconcile(stored.values(), observed, later) == []


def test_reconcile_closes_only_what_ran_again() -> None:
    bandit = evidence(EvidenceResult.failure, [finding("B105")])
    tests = evidence(EvidenceResult.failure, tool="pytest", kind="com.ibm.unit_tests")
    existing = incidents_from_evidence([bandit, tests], URIS, GRACE, TODAY)
    assert len(existing) == 2
    # bandit ran again and passes; pytest did not run
    rerun = evidence(EvidenceResult.success, day=5)
    observed = incidents_from_evidence([rerun], URIS, GRACE, TODAY)
    assert reconcile(existing, observed, TODAY) == []  # without `scanned`, nothing closes
    closed = reconcile(existing, observed, TODAY, scanned=scanned_pairs([rerun], URIS))
    assert [(i.tool, i.state) for i in closed] == [("bandit", "closed")]
    # the same tool on another asset does not close it either
    elsewhere = evidence(EvidenceResult.success, assets=(LIB,), day=5)
    assert reconcile(existing, [], TODAY, scanned=scanned_pairs([elsewhere], URIS)) == []


def test_reconcile_reopens_a_closed_incident() -> None:
    record = evidence(EvidenceResult.failure, [finding("B105")])
    (incident,) = incidents_from_evidence([record], URIS, GRACE, TODAY)
    closed = incident.model_copy(update={"state": "closed", "closed": TODAY})
    later = TODAY + timedelta(days=40)
    (reopened,) = reconcile([closed], incidents_from_evidence([record], URIS, GRACE, later), later)
    assert (reopened.state, reopened.found, reopened.closed) == ("open", later, None)
    assert reopened.due == later + timedelta(days=30)


def test_overdue() -> None:
    record = evidence(
        EvidenceResult.failure,
        [
            finding("C", Severity.critical),
            finding("M", Severity.medium),
            finding("L", Severity.low),
        ],
    )
    incidents = incidents_from_evidence([record], URIS, GRACE, TODAY)
    assert overdue(incidents, TODAY + timedelta(days=30)) == []  # due today is not overdue
    assert [i.finding_id for i in overdue(incidents, TODAY + timedelta(days=31))] == ["C"]
    late = overdue(incidents, TODAY + timedelta(days=365))
    assert [i.finding_id for i in late] == ["C", "M", "L"]
    first = late[0]
    assert first.line == (
        f"{first.asset_uri}: incident {first.id} ({first.tool} C, critical) due {first.due}"
    )
    closed = [i.model_copy(update={"state": "closed", "closed": TODAY}) for i in incidents]
    assert overdue(closed, TODAY + timedelta(days=365)) == []


def test_incident_record_is_strict() -> None:
    with pytest.raises(ValidationError):
        Incident.model_validate({"id": "INC-x"})
    record = evidence(EvidenceResult.failure, [finding("B105")])
    (incident,) = incidents_from_evidence([record], URIS, GRACE, TODAY)
    assert Incident.model_validate_json(incident.to_json()) == incident
