"""The evidence store's contract for records that cannot be read: reported, never raised.

Run against the evidence locker (SeaweedFS) and the in-memory store, like test_ports.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from port_cases import EvidenceCase, open_evidence

from changeflow.canonical import canonical_json
from changeflow.errors import IntegrityError
from changeflow.evidence import make_evidence
from changeflow.models import Asset

COMMIT = Asset.for_uri("https://example.com/org/app#" + "a" * 40)
OTHER = Asset.for_uri("https://example.com/org/lib#" + "b" * 40)


@pytest.fixture(params=["s3", "memory"])
def unlocked(request: pytest.FixtureRequest) -> EvidenceCase:
    return open_evidence(request, locked=False)


def test_find_evidence_reports_what_cannot_be_read(unlocked: EvidenceCase) -> None:
    store = unlocked.store
    records = [
        store.put_evidence(
            make_evidence(
                evidence_type_id=kind, result="success", tool="t", scope="ci-1",
                assets=assets, date=datetime(2026, 11, 1, tzinfo=UTC),
            ),
            assets,
        )
        for kind, assets in (
            ("com.ibm.unit_tests", [COMMIT]),
            ("com.ibm.sbom", [COMMIT, OTHER]),
            ("com.ibm.static_scan", [COMMIT]),
        )
    ]  # fmt: skip
    good, naive, garbage = records
    body = naive.model_dump(mode="json", exclude_none=True)
    unlocked.overwrite_evidence(naive.id, canonical_json({**body, "date": "2020-01-01T00:00:00"}))
    unlocked.overwrite_evidence(garbage.id, b"{oops")

    found = store.find_evidence([COMMIT.id, OTHER.id])
    assert found.records == [good]
    by_id = {u.evidence_id: u for u in found.unreadable}
    assert sorted(by_id) == sorted([naive.id, garbage.id])
    assert by_id[naive.id].assets == sorted([COMMIT.id, OTHER.id])
    assert "time zone" in by_id[naive.id].reason
    assert by_id[garbage.id].assets == [COMMIT.id]
    assert "not a valid record" in by_id[garbage.id].reason
    # the strict read still refuses, for callers that must not go on
    with pytest.raises(IntegrityError, match="not a valid record"):
        store.evidence_for_assets([OTHER.id])
