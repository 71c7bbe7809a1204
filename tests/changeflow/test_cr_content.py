"""What a CR says beyond its fields (issue 14): a closing summary, links to failing evidence."""

from __future__ import annotations

from datetime import UTC, datetime

from changeflow.change import close, draft_change_request, transition
from changeflow.delta import Delta
from changeflow.deploying import deploy_finished, deploy_started
from changeflow.models import ChangeRequest, ChangeState, CloseCategory, EvidenceResult
from changeflow.readiness import Readiness
from changeflow.render import closing_summary, render_change_request
from changeflow.summary import EvidenceSummary, SummaryItem

URI = "artifact://app/bin@sha256:" + "a" * 64


def _filed(summary: EvidenceSummary, links: dict[str, str] | None = None) -> ChangeRequest:
    return draft_change_request(
        "CHG0000042", environment="prod", region="r1", deployment_run_id="deploy-1",
        delta=Delta(), previous={}, inventory_commit="c" * 40, previous_inventory_commit=None,
        promotion=None, summary=summary, summary_url="s3://b/raw/cd/deploy-1/summary.json",
        summary_sha256="sha256:" + "0" * 64, readiness=Readiness(ready=True), emergency=False,
        links=links,
    )  # fmt: skip


def _failing(evidence_id: str) -> SummaryItem:
    return SummaryItem(
        evidence_id=evidence_id, evidence_type_id="com.ibm.unit_tests", asset_id="a" * 64,
        asset_uri=URI, result=EvidenceResult.failure, date=datetime(2026, 1, 1, tzinfo=UTC),
        tool="pytest", scope="ci-1",
    )  # fmt: skip


def test_each_failing_record_links_to_its_report() -> None:
    summary = EvidenceSummary(
        scope="deploy-1", environment="prod", region="r1",
        evidence=[_failing("e" * 64), _failing("f" * 64)],
    )  # fmt: skip
    report = "s3://locker/raw/attachments/ab/" + "ab" * 32 + "/content"
    cr = _filed(summary, {"e" * 64: report})
    assert cr.failed_evidence == [
        f"{URI}: com.ibm.unit_tests failure (evidence {'e' * 64}): {report}",
        f"{URI}: com.ibm.unit_tests failure (evidence {'f' * 64})",  # no report, no run: no link
    ]


def test_a_closed_change_request_ends_with_what_ran_and_how_long_it_took() -> None:
    cr = _filed(EvidenceSummary(scope="deploy-1", environment="prod", region="r1"))
    assert "## Closing summary" not in render_change_request(cr)  # still open
    cr = transition(cr, ChangeState.authorize, by="changeflow", why="assessed")
    cr = transition(cr, ChangeState.scheduled, by="changeflow", why="approved")
    cr = transition(cr, ChangeState.implement, by="changeflow", why="in window")
    cr = deploy_started(cr.model_copy(update={"deploy_command": ["./deploy.sh", "r1"]}))
    cr = deploy_finished(cr, 0).model_copy(update={"acceptance_evidence": ["a" * 64]})
    # the deployment took 90 s (history dates are what the summary reads)
    history = [dict(h) for h in cr.history]
    history[-2]["date"] = "2026-01-01T10:00:00+00:00"
    cr = cr.model_copy(update={"history": history})
    closed = close(cr, CloseCategory.successful, by="changeflow", notes="deployed")
    history = [dict(h) for h in closed.history]
    history[-1]["date"] = "2026-01-01T10:01:30+00:00"
    closed = closed.model_copy(update={"history": history})

    assert closing_summary(closed) == [
        "- outcome: successful",
        "- deploy command: `./deploy.sh r1`, exit 0",
        f"- acceptance evidence: `{'a' * 64}`",
        "- took 90 s from the deployment's start to closing",
    ]
    assert "## Closing summary\n\n- outcome: successful" in render_change_request(closed)
