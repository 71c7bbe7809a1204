"""One contract per port, run against the real adapter and the in-memory one.

In the spirit of Prefect's `BlockStandardTestSuite`: each behaviour the flows rely on is written
once and parametrized over the implementations (port_cases.py), so the in-memory stores the
flow-logic tests run on cannot drift from the real ones. Here: the evidence store, change
management and the incident store; the inventory's contract is test_inventory_port.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from port_cases import (
    EvidenceCase,
    Opened,
    entry,
    open_changes,
    open_evidence,
    open_incidents,
)
from stack_support import race

from changeflow.canonical import digest
from changeflow.change import note, record_decision, transition
from changeflow.errors import BadInput, IntegrityError, StaleChange
from changeflow.evidence import make_evidence
from changeflow.incidents import GracePeriods, Incident, incidents_from_evidence, reconcile
from changeflow.models import (
    Approval,
    Asset,
    ChangeRequest,
    ChangeState,
    CloseCategory,
    Evidence,
    Finding,
    Severity,
    asset_id,
)
from changeflow.ports import ChangeManagement, Commit, EvidenceStore, IncidentStore, Verification
from changeflow.revisions import revision
from changeflow.storage import StorageCheck
from changeflow.summary import EvidenceSummary, summarize

COMMIT = Asset.for_uri("https://example.com/org/app#" + "a" * 40)
OTHER = Asset.for_uri("https://example.com/org/lib#" + "b" * 40)


@pytest.fixture(params=["s3", "memory"])
def evidence(request: pytest.FixtureRequest) -> EvidenceCase:
    return open_evidence(request, locked=True)


@pytest.fixture(params=["s3", "memory"])
def unlocked(request: pytest.FixtureRequest) -> EvidenceCase:
    return open_evidence(request, locked=False)


@pytest.fixture(params=["git", "servicenow", "memory"])
def changes(request: pytest.FixtureRequest, tmp_path: Path) -> Opened[ChangeManagement]:
    return open_changes(request, tmp_path)


@pytest.fixture(params=["git", "servicenow", "memory"])
def incidents(request: pytest.FixtureRequest, tmp_path: Path) -> IncidentStore:
    return open_incidents(request, tmp_path)


# -- the evidence store ---------------------------------------------------------------------


def _record(store: EvidenceStore, result: str = "success", day: int = 1) -> Evidence:
    attachment = store.store_attachment_bytes(b"<testsuite/>", "junit.xml")
    return make_evidence(
        evidence_type_id="com.ibm.unit_tests", result=result, tool="pytest", scope="ci-1",
        assets=[COMMIT], attachments=[attachment], date=datetime(2026, 11, day, tzinfo=UTC),
    )  # fmt: skip


def test_attachments_are_content_addressed_and_written_once(
    evidence: EvidenceCase, tmp_path: Path
) -> None:
    store = evidence.store
    assert isinstance(store, EvidenceStore)
    stored = store.store_attachment_bytes(b"report bytes", "report.xml")
    assert (stored.hash, stored.label, stored.size) == (digest(b"report bytes"), "report.xml", 12)
    assert store.store_attachment_bytes(b"report bytes", "report.xml") == stored
    assert store.get_attachment(stored.hash) == b"report bytes"
    assert store.holds_artifact(stored.url)
    assert not store.holds_artifact("docker://registry.example/app@sha256:" + "0" * 64)
    path = tmp_path / "sbom.json"
    path.write_bytes(b"{}")
    assert store.store_attachment(path).label == "sbom.json"
    with pytest.raises(BadInput):
        store.store_attachment(tmp_path / "missing.json")
    target = tmp_path / "out" / "report.xml"
    assert store.download_attachment(stored.hash, target) == 12
    assert target.read_bytes() == b"report bytes"
    with pytest.raises(IntegrityError):
        store.get_attachment(digest(b"never stored"))


def test_evidence_round_trips_and_a_second_put_is_a_no_op(evidence: EvidenceCase) -> None:
    store = evidence.store
    record = _record(store)
    stored = store.put_evidence(record, [COMMIT])
    assert stored == record and stored.is_sealed()
    assert store.put_evidence(record, [COMMIT]) == stored
    assert store.get_evidence(stored.id) == stored
    unsealed = record.model_copy(update={"id": ""})
    assert store.put_evidence(unsealed, [COMMIT]).id == stored.id
    forged = record.model_copy(update={"id": "f" * 64})
    with pytest.raises(IntegrityError, match="does not hash"):
        store.put_evidence(forged, [COMMIT])
    dangling = make_evidence(
        evidence_type_id="com.ibm.unit_tests", result="success", tool="pytest", scope="ci-1",
        assets=[COMMIT],
        attachments=[stored.attachments[0].model_copy(update={"hash": digest(b"absent")})],
    )  # fmt: skip
    with pytest.raises(IntegrityError, match="not stored"):
        store.put_evidence(dangling, [COMMIT])
    with pytest.raises(IntegrityError):
        store.get_evidence("0" * 64)


def test_evidence_for_assets_finds_every_record_per_asset(evidence: EvidenceCase) -> None:
    store = evidence.store
    old = store.put_evidence(_record(store, "failure", day=1), [COMMIT])
    new = store.put_evidence(_record(store, "success", day=2), [COMMIT])
    both = make_evidence(
        evidence_type_id="com.ibm.static_scan", result="success", tool="bandit", scope="ci-1",
        assets=[COMMIT, OTHER],
    )  # fmt: skip
    store.put_evidence(both, [COMMIT, OTHER])
    unknown = asset_id("https://example.com/none#" + "c" * 40)
    found = store.evidence_for_assets([COMMIT.id, OTHER.id, unknown])
    assert found == {
        COMMIT.id: sorted([old, new, both], key=lambda e: e.id),
        OTHER.id: [both],
        unknown: [],
    }


def _summary(records: list[Evidence], scope: str = "deploy-1") -> EvidenceSummary:
    return summarize(
        scope=scope, environment="prod", region="us-south", assets={COMMIT.id: COMMIT.uri},
        records=records,
    )  # fmt: skip


def test_a_summary_is_stored_once_and_checked_against_its_digest(evidence: EvidenceCase) -> None:
    store = evidence.store
    summary = _summary([store.put_evidence(_record(store), [COMMIT])])
    url, sha = store.put_summary(summary)
    assert sha == digest(summary.to_json())
    assert store.put_summary(summary) == (url, sha)
    assert store.get_summary(url, sha) == summary
    with pytest.raises(IntegrityError):
        store.get_summary(url, "sha256:" + "0" * 64)
    with pytest.raises(IntegrityError):
        store.put_summary(_summary([]))  # another summary for the same run


def test_envelopes_are_kept_beside_records_per_build_and_per_decision(
    evidence: EvidenceCase,
) -> None:
    store = evidence.store
    record = store.put_evidence(_record(store), [COMMIT])
    assert store.get_evidence_envelope(record.id) is None  # an unsigned record
    store.put_evidence_envelope(record.id, b'{"envelope":1}')
    store.put_evidence_envelope(record.id, b'{"envelope":1}')  # the same again: a no-op
    assert store.get_evidence_envelope(record.id) == b'{"envelope":1}'
    with pytest.raises(IntegrityError):
        store.put_evidence_envelope(record.id, b'{"envelope":2}')
    assert store.get_provenance("ci-1") == []
    first = store.put_provenance("ci-1", b'{"provenance":1}')
    second = store.put_provenance("ci-1", b'{"provenance":2}')  # a rerun adds one
    assert first == digest(b'{"provenance":1}') and first != second
    assert sorted(store.get_provenance("ci-1")) == [b'{"provenance":1}', b'{"provenance":2}']
    assert store.get_provenance("ci-2") == []
    url, sha = store.put_attestation(b'{"vsa":1}')
    assert sha == digest(b'{"vsa":1}') and store.get_attestation(url, sha) == b'{"vsa":1}'
    with pytest.raises(IntegrityError):
        store.get_attestation(url, "sha256:" + "0" * 64)


def test_verification_counts_what_it_rehashed(evidence: EvidenceCase) -> None:
    store = evidence.store
    record = store.put_evidence(_record(store), [COMMIT])
    assert store.verify_evidence([record.id]) == Verification(checked=2)
    url, sha = store.put_summary(_summary([record]))
    assert store.verify_summary(url, sha) == Verification(checked=3)
    artifact = store.store_attachment_bytes(b"the wheel", "app.whl")
    app = entry("app", artifact=artifact.url, sha256=artifact.hash, provenance=COMMIT.uri)
    lost = entry("lost", provenance="artifact://lost@sha256:" + "1" * 64)
    result = store.verify_entries([app, lost])
    assert result.checked == 3
    assert result.broken == [f"entry lost: no evidence for {lost.provenance}"]
    missing = store.verify_summary(url, "sha256:" + "0" * 64)
    assert missing.checked == 1 and len(missing.broken) == 1


def test_tampering_is_found_on_every_read(unlocked: EvidenceCase) -> None:
    store = unlocked.store
    record = store.put_evidence(_record(store), [COMMIT])
    attachment = record.attachments[0].hash
    unlocked.overwrite_attachment(attachment, b"x")
    with pytest.raises(IntegrityError, match="no longer matches"):
        store.get_attachment(attachment)
    assert store.verify_evidence([record.id]).broken != []
    forged = record.model_copy(update={"details": record.details.model_copy(update={"tool": "x"})})
    unlocked.overwrite_evidence(record.id, forged.to_json())
    with pytest.raises(IntegrityError, match="does not hash"):
        store.get_evidence(record.id)
    check = store.verify_evidence([record.id])
    assert check.checked == 1 and "does not hash" in check.broken[0]


def test_a_locked_store_passes_the_storage_check(evidence: EvidenceCase) -> None:
    check = evidence.store.check_storage()
    assert isinstance(check, StorageCheck)
    assert check.ok and check.locked and check.versioned
    assert check.retention_days >= check.required_days and check.retention_ok


def test_an_unlocked_store_fails_the_storage_check(unlocked: EvidenceCase) -> None:
    check = unlocked.store.check_storage()
    assert isinstance(check, StorageCheck)
    assert not check.ok and not check.locked and check.retention_days == 0


# -- change management ----------------------------------------------------------------------


def _draft(region: str = "us-south") -> Callable[[str], ChangeRequest]:
    def build(change_id: str) -> ChangeRequest:
        return ChangeRequest(
            id=change_id, environment="prod", region=region, deployment_run_id="deploy-1",
            description="weekly release",
        )  # fmt: skip

    return build


def test_change_requests_are_filed_read_and_listed(changes: Opened[ChangeManagement]) -> None:
    store = changes.store
    assert isinstance(store, ChangeManagement)
    assert store.list() == []
    first = store.create(_draft(), message="filed by the deploy flow", by="deployer")
    second = store.create(_draft("eu-de"))
    assert (first.id, second.id) == ("CHG0000001", "CHG0000002")
    assert store.get(first.id) == first
    assert store.list() == [first, second]
    link = store.link(first)
    assert link is not None and first.id in link
    for bad in ("CHG0000009", "../etc/passwd"):
        with pytest.raises(BadInput):
            store.get(bad)
    with pytest.raises(BadInput):
        store.update(first.model_copy(update={"id": "CHG0000042"}), "never filed")
    with pytest.raises(BadInput):
        store.create(lambda _id: _draft()("CHG0000077"))
    assert store.history("CHG0000009") == []


def test_each_change_is_one_history_entry(changes: Opened[ChangeManagement]) -> None:
    store = changes.store
    cr = store.create(_draft())
    assert store.decision(cr.id) is None
    approval = Approval(by="alice", decision="approved", comment="ok")
    approved = cr.model_copy(update={"state": ChangeState.scheduled, "approvals": [approval]})
    assert store.update(approved, "approved by alice", by="alice") == approved
    assert store.get(cr.id) == approved
    history = store.history(cr.id)
    assert len(history) == 2 and all(isinstance(h, Commit) for h in history)
    # who: the author, or (ServiceNow, where the API user writes) named in the entry
    assert "alice" in history[0].author + history[0].message
    assert "approved by alice" in history[0].message
    assert "created" in history[1].message
    store.update(approved, "approved again")  # the same content changes nothing
    assert len(store.history(cr.id)) == 2
    decided = store.decision(cr.id)
    if changes.kind == "servicenow":
        # a backend with approvals of its own reports those; this one was taken in the record
        assert decided is None
    else:
        assert decided is not None and (decided.by, decided.decision) == ("alice", "approved")


def test_a_listing_reads_one_environment_or_the_open_ones(
    changes: Opened[ChangeManagement],
) -> None:
    store = changes.store

    def file(environment: str, region: str) -> ChangeRequest:
        return store.create(
            lambda i: _draft(region)(i).model_copy(update={"environment": environment})
        )

    prod, staging, prod_eu = file("prod", "r1"), file("staging", "r1"), file("prod", "eu-de")
    closed = prod.model_copy(
        update={"state": ChangeState.closed, "close_category": CloseCategory.successful}
    )
    store.update(closed, "closed: deployed")
    reader = changes.another()  # what another run reads, not this handle's memory
    assert [c.id for c in reader.list()] == [prod.id, staging.id, prod_eu.id]
    assert [c.id for c in reader.list("prod")] == [prod.id, prod_eu.id]
    assert [c.id for c in reader.list("prod", open_only=True)] == [prod_eu.id]
    assert [c.id for c in reader.list(open_only=True)] == [staging.id, prod_eu.id]
    assert reader.list("dev") == [] and reader.list("pro") == []  # no prefix matches
    # reopened, it is listed as open again; the record listed is the current one
    reopened = closed.model_copy(update={"state": ChangeState.implement, "close_category": None})
    store.update(reopened, "reopened")
    assert reader.list("prod", open_only=True) == [reopened, prod_eu]
    for bad in ("../prod", "prod/r1", "", "prod^stateIN3"):
        with pytest.raises(BadInput):
            reader.list(bad)


def test_concurrent_filings_get_distinct_ids(changes: Opened[ChangeManagement]) -> None:
    count = 6
    created, errors = race(
        count,
        lambda i: changes.another(),
        lambda i, store: store.create(_draft(f"region-{i}")),
    )
    assert errors == []
    assert sorted(cr.id for cr in created) == [f"CHG{n:07d}" for n in range(1, count + 1)]
    stored = changes.another().list()
    assert {cr.id: cr.region for cr in stored} == {cr.id: cr.region for cr in created}


def _waiting(store: ChangeManagement) -> ChangeRequest:
    """A CR filed and moved to `authorize`: waiting for a person's decision."""
    filed = store.create(_draft())
    assessed = transition(filed, ChangeState.assess, by="changeflow", why="filed")
    waiting = transition(assessed, ChangeState.authorize, by="changeflow", why="assessed")
    return store.update(waiting, "waiting for approval", expected=revision(filed))


def test_a_write_over_a_changed_record_is_refused(changes: Opened[ChangeManagement]) -> None:
    store, other = changes.store, changes.another()
    waiting = _waiting(store)
    read = revision(waiting)
    approved = record_decision(waiting, Approval(by="alice", decision="approved"))
    rejected = record_decision(waiting, Approval(by="bob", decision="rejected"))
    other.update(approved, "approved by alice", by="alice", expected=read)
    entries = len(store.history(waiting.id))
    # bob decided on the CR as it was before alice's decision: refused, nothing written
    with pytest.raises(StaleChange, match="approved by alice"):
        store.update(rejected, "rejected by bob", by="bob", expected=read)
    assert store.get(waiting.id) == approved
    assert len(store.history(waiting.id)) == entries
    # the same write again (a retried write that landed) is neither a change nor refused
    assert store.update(approved, "approved by alice", by="alice", expected=read) == approved
    assert len(store.history(waiting.id)) == entries
    # over the revision it is now, a write goes ahead; without `expected`, as before
    noted = note(approved, "looked at again")
    assert store.update(noted, "noted", expected=revision(approved)) == noted
    assert store.get(waiting.id) == noted
    assert len(store.history(waiting.id)) == entries + 1


@pytest.fixture(params=["git", "memory"])
def atomic_changes(request: pytest.FixtureRequest, tmp_path: Path) -> Opened[ChangeManagement]:
    """The backends whose check and write are one step (ServiceNow's Table API has no
    conditional update: it checks right before it writes)."""
    return open_changes(request, tmp_path)


def test_of_two_decisions_at_once_exactly_one_is_recorded(
    atomic_changes: Opened[ChangeManagement],
) -> None:
    waiting = _waiting(atomic_changes.store)
    read = revision(waiting)
    decisions = [
        record_decision(waiting, Approval(by="alice", decision="approved")),
        record_decision(waiting, Approval(by="bob", decision="rejected")),
    ]
    written, errors = race(
        2,
        lambda i: atomic_changes.another(),
        lambda i, store: store.update(decisions[i], f"decision {i}", expected=read),
    )
    assert len(written) == 1 and len(errors) == 1, errors
    assert isinstance(errors[0], StaleChange)
    stored = atomic_changes.store.get(waiting.id)
    assert stored == written[0] and len(stored.approvals) == 1
    history = atomic_changes.store.history(waiting.id)
    assert sum("decision" in h.message for h in history) == 1


# -- incidents ------------------------------------------------------------------------------


def _found(today: date, *findings: str) -> list[Incident]:
    uri = "artifact://app@sha256:" + "a" * 64
    record = make_evidence(
        evidence_type_id="com.ibm.static_scan", result="failure", tool="bandit", scope="ci-1",
        assets=[Asset.for_uri(uri)],
        findings=[Finding(id=f, severity=Severity.high) for f in findings],
    )  # fmt: skip
    return incidents_from_evidence([record], {asset_id(uri): uri}, GracePeriods(), today)


def test_incidents_are_opened_listed_and_closed(incidents: IncidentStore) -> None:
    assert isinstance(incidents, IncidentStore)
    assert incidents.incidents() == []
    incidents.put_incidents([], "nothing")
    assert incidents.incidents() == []
    today = date(2026, 11, 26)
    opened = reconcile([], _found(today, "B105", "B301"), today)
    incidents.put_incidents(opened, "ci run ci-1")
    assert incidents.incidents() == sorted(opened, key=lambda i: i.id)
    later = date(2026, 12, 3)
    writes = reconcile(incidents.incidents(), _found(later, "B105"), later)
    incidents.put_incidents(writes, "ci run ci-2")
    stored = {i.finding_id: i for i in incidents.incidents()}
    assert (stored["B301"].state, stored["B301"].closed) == ("closed", later)
    assert (stored["B105"].state, stored["B105"].found) == ("open", today)
