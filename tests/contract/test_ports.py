"""One contract per port, run against the real adapter and the in-memory one.

In the spirit of Prefect's `BlockStandardTestSuite`: each behaviour the flows rely on is written
once and parametrized over the implementations, the evidence locker on SeaweedFS, the git
inventory and change management on real bare remotes, and `blocks.memory`, so the in-memory
stores the flow-logic tests run on cannot drift from the real ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Generic, TypeVar

import pytest
from pydantic import SecretStr
from servicenow_fake import ServiceNowFake
from stack_support import S3Server, new_bucket, race

from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.incidents import GitIncidents
from blocks.inventory import GitInventory
from blocks.memory import (
    MemoryChangeManagement,
    MemoryEvidenceStore,
    MemoryIncidents,
    MemoryInventory,
)
from blocks.servicenow import ServiceNowChangeManagement, ServiceNowIncidents
from changeflow.canonical import digest
from changeflow.errors import BadInput, IntegrityError, NotReady
from changeflow.evidence import make_evidence
from changeflow.incidents import GracePeriods, Incident, incidents_from_evidence, reconcile
from changeflow.inventory_rules import InventoryCheck
from changeflow.models import (
    Approval,
    Asset,
    ChangeRequest,
    ChangeState,
    Evidence,
    Finding,
    InventoryEntry,
    Promotion,
    Severity,
    asset_id,
)
from changeflow.ports import (
    ChangeManagement,
    Commit,
    EvidenceStore,
    IncidentStore,
    Inventory,
    Verification,
)
from changeflow.storage import StorageCheck
from changeflow.summary import EvidenceSummary, summarize
from cli.local_stack import init_bare_repo

COMMIT = Asset.for_uri("https://example.com/org/app#" + "a" * 40)
OTHER = Asset.for_uri("https://example.com/org/lib#" + "b" * 40)


# -- the implementations --------------------------------------------------------------------


@dataclass
class EvidenceCase:
    """An evidence store and how to change its stored bytes behind its back."""

    store: EvidenceStore
    overwrite_attachment: Callable[[str, bytes], None]
    overwrite_evidence: Callable[[str, bytes], None]


def _locker_case(locker: EvidenceLocker) -> EvidenceCase:
    def put(key: str, body: bytes) -> None:
        locker.client.put_object(Bucket=locker.bucket, Key=key, Body=body)

    def shard(h: str) -> str:
        return f"{h[:2]}/{h}"

    # the keys of the storage layout (docs/architecture.md)
    return EvidenceCase(
        locker,
        lambda h, b: put(locker.key("raw/attachments", shard(h.split(":")[1]), "content"), b),
        lambda i, b: put(locker.key("raw/evidences", shard(i), "index.json"), b),
    )


def _memory_case(locked: bool) -> EvidenceCase:
    store = MemoryEvidenceStore(locked=locked, retention_days=1)
    return EvidenceCase(
        store,
        lambda h, b: store.overwrite(store.attachment_key(h), b),
        lambda i, b: store.overwrite(store.evidence_key(i), b),
    )


def _evidence_case(request: pytest.FixtureRequest, locked: bool) -> EvidenceCase:
    if request.param == "memory":
        return _memory_case(locked)
    server: S3Server = request.getfixturevalue("s3_server")
    locker = server.locker(new_bucket(), retention_days=1)
    if locked:
        locker.create_bucket()
    else:
        # no Object Lock: the objects can be overwritten out of band
        locker.client.create_bucket(Bucket=locker.bucket)
    return _locker_case(locker)


@pytest.fixture(params=["s3", "memory"])
def evidence(request: pytest.FixtureRequest) -> EvidenceCase:
    return _evidence_case(request, locked=True)


@pytest.fixture(params=["s3", "memory"])
def unlocked(request: pytest.FixtureRequest) -> EvidenceCase:
    return _evidence_case(request, locked=False)


Port = TypeVar("Port")


@dataclass
class Opened(Generic[Port]):
    """A store, and a way to open another handle on the same records (another writer)."""

    store: Port
    another: Callable[[], Port]


def _git_url(tmp_path: Path, name: str) -> str:
    return init_bare_repo(tmp_path / f"{name}.git")


@pytest.fixture(params=["git", "memory"])
def inventory(request: pytest.FixtureRequest, tmp_path: Path) -> Opened[Inventory]:
    if request.param == "memory":
        memory = MemoryInventory()
        return Opened(memory, lambda: memory)
    url, count = _git_url(tmp_path, "inventory"), iter(range(1000))

    def open_git() -> Inventory:
        return GitInventory(remote_url=url, cache_dir=str(tmp_path / f"cache-{next(count)}"))

    return Opened(open_git(), open_git)


def _servicenow(request: pytest.FixtureRequest) -> Callable[[], ServiceNowChangeManagement]:
    """A fresh ServiceNow (the local fake of its documented API) numbering from CHG0000001."""
    fake = ServiceNowFake(first_number=1).start()
    request.addfinalizer(fake.stop)
    return lambda: ServiceNowChangeManagement(
        instance_url=fake.url, username=fake.username, password=SecretStr(fake.password)
    )


@pytest.fixture(params=["git", "servicenow", "memory"])
def changes(request: pytest.FixtureRequest, tmp_path: Path) -> Opened[ChangeManagement]:
    if request.param == "memory":
        memory = MemoryChangeManagement()
        return Opened(memory, lambda: memory)
    if request.param == "servicenow":
        open_servicenow = _servicenow(request)
        return Opened(open_servicenow(), open_servicenow)
    url, count = _git_url(tmp_path, "changes"), iter(range(1000))

    def open_git() -> ChangeManagement:
        cache = str(tmp_path / f"cache-{next(count)}")
        return GitChangeManagement(remote_url=url, cache_dir=cache)

    return Opened(open_git(), open_git)


@pytest.fixture(params=["git", "servicenow", "memory"])
def incidents(request: pytest.FixtureRequest, tmp_path: Path) -> IncidentStore:
    if request.param == "memory":
        return MemoryIncidents()
    if request.param == "servicenow":
        return ServiceNowIncidents.on_instance_of(_servicenow(request)())
    return GitIncidents(remote_url=_git_url(tmp_path, "changes"), cache_dir=str(tmp_path / "c"))


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


def test_verification_counts_what_it_rehashed(evidence: EvidenceCase) -> None:
    store = evidence.store
    record = store.put_evidence(_record(store), [COMMIT])
    assert store.verify_evidence([record.id]) == Verification(checked=2)
    url, sha = store.put_summary(_summary([record]))
    assert store.verify_summary(url, sha) == Verification(checked=3)
    artifact = store.store_attachment_bytes(b"the wheel", "app.whl")
    entry = _entry("app", artifact=artifact.url, sha256=artifact.hash, provenance=COMMIT.uri)
    lost = _entry("lost", provenance="artifact://lost@sha256:" + "1" * 64)
    result = store.verify_entries([entry, lost])
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


# -- the inventory --------------------------------------------------------------------------


def _entry(name: str, version: str = "1.0.0", **fields: str) -> InventoryEntry:
    hexa = hashlib.sha256(f"{name}@{version}".encode()).hexdigest()
    values = {
        "name": name, "artifact": f"docker://registry.example/{name}@sha256:{hexa}",
        "version": version, "type": "image", "sha256": f"sha256:{hexa}",
        "repository_url": "https://git.example/org/app",
        "commit_sha": hashlib.sha1(version.encode()).hexdigest(), "build_number": version,
        "pipeline_run_id": f"ci-{version}",
        "provenance": f"docker://registry.example/{name}@sha256:{hexa}", **fields,
    }  # fmt: skip
    return InventoryEntry.model_validate(values)


def _promotion(pid: str, target: str = "staging", **fields: object) -> Promotion:
    return Promotion.model_validate(
        {"id": pid, "source": "master", "target": target, "assigned_to": "release-manager",
         "description": "weekly release", "backout_plan": "redeploy the previous label", **fields}
    )  # fmt: skip


def test_entries_are_recorded_on_a_branch(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    assert isinstance(store, Inventory)
    assert store.resolve("master") is None
    head = store.add_entries([_entry("app-a"), _entry("team/app-b")], message="ci build 1")
    assert head is not None and store.resolve("master") == head
    assert store.get("app-a", "master") == _entry("app-a")
    assert store.get("nope", "master") is None
    assert store.entries(head) == {"app-a": _entry("app-a"), "team/app-b": _entry("team/app-b")}
    assert store.add_entries([_entry("app-a")]) == head  # the same content: no new commit
    second = store.add_entries([_entry("app-a", "2.0.0")])
    assert second not in (None, head)
    assert store.get("app-a", head) == _entry("app-a")
    assert store.validate("master") == InventoryCheck(commit=second or "", checked=2)
    for bad in (
        lambda: store.add_entries([_entry("x"), _entry("x", "2")]),
        lambda: store.add_entries([_entry("app-a/inner")]),  # app-a is an entry
        lambda: store.add_entries([_entry("y")], branch="bad branch"),
        lambda: store.entries("no-such-branch"),
        lambda: store.get("../etc", "master"),
        lambda: store.validate("no-such-branch"),
    ):
        with pytest.raises(BadInput):
            bad()


def test_concurrent_writers_lose_no_entry(inventory: Opened[Inventory]) -> None:
    _, errors = race(
        4,
        lambda i: inventory.another(),
        lambda i, store: store.add_entries([_entry(f"team-{i}/app")], message=f"ci {i}"),
    )
    assert errors == []
    assert sorted(inventory.another().entries("master")) == [f"team-{i}/app" for i in range(4)]


def test_a_delta_holds_what_changed_between_two_refs(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    store.add_entries([_entry("app-a"), _entry("app-b"), _entry("lib/c")])
    store.add_label("dev_latest", "master")
    store.add_entries([_entry("app-a", "2.0.0"), _entry("app-d")])
    delta = store.delta("dev_latest", "master")
    assert (delta.changed, delta.added, delta.deleted) == (["app-a"], ["app-d"], [])
    assert delta.entries == {"app-a": _entry("app-a", "2.0.0"), "app-d": _entry("app-d")}
    everything = store.delta(None, "master")
    assert everything.added == ["app-a", "app-b", "app-d", "lib/c"]
    assert store.delta("us-south_dev_latest", "master").added == everything.added
    assert store.delta("master", "master").is_empty
    with pytest.raises(BadInput):
        store.delta(None, "no-such-branch")


def test_a_promotion_carries_what_the_target_lacks(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    head = store.add_entries([_entry("app-a"), _entry("app-b"), _entry("db/schema")])
    assert store.promotable("master", "staging") == ["app-a", "app-b", "db/schema"]
    assert store.promotable("master", "staging", include=["app-*"], exclude=["app-b"]) == [
        "app-a"
    ]
    labels, master = store.labels(), store.resolve("master")
    for bad in (("no-such-env", "prod"), ("master", "master"), ("master", "bad target")):
        with pytest.raises(BadInput):
            store.promotable(*bad)
    assert (store.labels(), store.resolve("master"), store.resolve("staging")) == (
        labels, master, None,
    )  # fmt: skip
    record = store.promote(_promotion("p1", exclude=["db/*"]))
    assert record.entries == ["app-a", "app-b"] and record.source_commit == head
    assert store.entries("staging") == {"app-a": _entry("app-a"), "app-b": _entry("app-b")}
    assert store.promotion("staging") == record
    assert store.promotion("no-such-env") is None
    assert store.promote(_promotion("p2")).entries == ["db/schema"]
    with pytest.raises(NotReady, match="nothing to promote from master to staging"):
        store.promotable("master", "staging")
    with pytest.raises(NotReady):
        store.promote(_promotion("p3"))
    store.add_entries([_entry("app-b", "2.0.0")])
    assert store.promote(_promotion("p4")).entries == ["app-b"]
    assert store.get("app-b", "staging") == _entry("app-b", "2.0.0")


def test_a_promotion_for_review_is_merged_later(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    store.add_entries([_entry("app-a"), _entry("app-b")])
    store.promote(_promotion("p1", include=["app-a"]))
    record = store.promote(_promotion("rel-7", include=["app-b"]), merge=False)
    assert store.promotion("promotion/staging/rel-7") == record
    assert store.get("app-b", "staging") is None
    with pytest.raises(BadInput):
        store.promote(_promotion("rel-7"), merge=False)  # already open
    store.add_entries([_entry("app-a", "2.0.0")])
    store.promote(_promotion("p3", include=["app-a"]))  # the target moves meanwhile
    head = store.merge_promotion("rel-7")
    assert head == store.resolve("staging")
    assert store.entries("staging") == {
        "app-a": _entry("app-a", "2.0.0"),
        "app-b": _entry("app-b"),
    }
    promoted = store.promotion("staging")
    assert promoted is not None and promoted.id == "rel-7"
    with pytest.raises(BadInput, match="unknown promotion rel-7"):
        store.merge_promotion("rel-7")


def test_labels_mark_commits(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    first = store.add_entries([_entry("app-a")])
    second = store.add_entries([_entry("app-a", "2.0.0")])
    assert first and second
    assert store.add_label("prod_latest", first) == first
    assert store.add_label("us-south_prod_latest", "prod_latest") == first
    assert store.resolve("prod_latest") == first
    with pytest.raises(BadInput, match="already exists"):
        store.add_label("prod_latest", second)
    assert store.move_label("prod_latest", "master") == second
    assert store.move_label("eu-de_prod_latest", first) == first  # a first deployment
    assert store.labels() == {
        "eu-de_prod_latest": first,
        "prod_latest": second,
        "us-south_prod_latest": first,
    }
    assert store.delete_label("us-south_prod_latest") == first
    assert "us-south_prod_latest" not in store.labels()
    for bad in ["bad label", "a..b", "x.lock", "-x", "a~1", ""]:
        with pytest.raises(BadInput):
            store.add_label(bad, "master")
        with pytest.raises(BadInput):
            store.move_label(bad, "master")
    with pytest.raises(BadInput, match="unknown label"):
        store.delete_label("never-made")
    with pytest.raises(BadInput):
        store.add_label("run-1", "no-such-ref")
    with pytest.raises(BadInput):
        store.move_label("run-1", "no-such-ref")
    with pytest.raises(BadInput, match="hidden by the branch"):
        store.add_label("master", "master")


def test_a_label_is_created_by_one_writer_only(inventory: Opened[Inventory]) -> None:
    # each writer labels another commit: a lost compare-and-swap would show as a moved label
    commits = [inventory.store.add_entries([_entry("app-a", f"1.0.{i}")]) for i in range(4)]

    def claim(i: int, store: Inventory) -> str | BadInput:
        # a refusal is an answer, not a crash: the other writers still race to the end
        try:
            return store.add_label("run-1", commits[i] or "")
        except BadInput as exc:
            return exc

    answers, errors = race(4, lambda i: inventory.another(), claim)
    assert errors == []
    won = [a for a in answers if not isinstance(a, BadInput)]
    assert len(won) == 1 and len(answers) == 4
    assert inventory.another().labels() == {"run-1": won[0]}


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
    assert history[0].author.startswith("alice") and "approved by alice" in history[0].message
    assert "created" in history[1].message
    store.update(approved, "approved again")  # the same content changes nothing
    assert len(store.history(cr.id)) == 2
    decided = store.decision(cr.id)
    assert decided is not None and (decided.by, decided.decision) == ("alice", "approved")


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
