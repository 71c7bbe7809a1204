"""A ServiceNow incident record shows each environment's dates; its due date is the earliest."""

from __future__ import annotations

from datetime import date

from blocks.servicenow import incident_fields
from changeflow.incidents import FoundIn, Incident, incident_id
from changeflow.models import Severity

URI = "artifact://app/bin@sha256:" + "a" * 64


def test_the_due_date_is_the_earliest_of_the_environments_it_was_found_in() -> None:
    ci = Incident(
        id=incident_id(URI, "bandit", "B105"), asset_uri=URI, tool="bandit", finding_id="B105",
        evidence_type_id="com.ibm.static_scan", severity=Severity.high, found=date(2026, 1, 1),
        due=date(2026, 1, 31), evidence_id="e" * 64,
    )  # fmt: skip
    assert incident_fields(ci)["due_date"].startswith("2026-01-31")
    found = {
        "staging": FoundIn(found=date(2026, 1, 2), due=date(2026, 3, 3)),
        "prod": FoundIn(found=date(2026, 2, 1), due=date(2026, 2, 11)),
    }
    fields = incident_fields(ci.model_copy(update={"environments": found}))
    assert fields["due_date"].startswith("2026-02-11")
    assert "in prod: found 2026-02-01, due 2026-02-11" in fields["description"]
    assert "in staging: found 2026-01-02, due 2026-03-03" in fields["description"]
