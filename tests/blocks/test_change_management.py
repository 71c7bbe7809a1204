"""GitChangeManagement and GitIncidents against a real bare remote: ids, one commit per change,
audit trail, links and decisions, incidents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from stack_support import git_in, push_ticket, race

from blocks.change_management import GitChangeManagement, shard_branch
from blocks.gitrepo import GitRemote
from blocks.incidents import GitIncidents
from changeflow.errors import BadInput, IntegrityError
from changeflow.incidents import GracePeriods, Incident, incidents_from_evidence, reconcile
from changeflow.models import (
    Approval,
    ChangeRequest,
    ChangeState,
    Evidence,
    EvidenceDetails,
    EvidenceOrigin,
    EvidenceResult,
    Finding,
    Severity,
    asset_id,
)


@pytest.fixture
def changes(bare: Path, tmp_path: Path) -> GitChangeManagement:
    return GitChangeManagement(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "cache"))


def draft(environment: str = "prod", region: str = "us-south") -> Callable[[str], ChangeRequest]:
    def build(change_id: str) -> ChangeRequest:
        return ChangeRequest(
            id=change_id,
            environment=environment,
            region=region,
            deployment_run_id="deploy-1",
            description="weekly release",
        )

    return build


def test_create_allocates_sequential_ids(changes: GitChangeManagement, bare: Path) -> None:
    first = changes.create(draft(), message="filed by the deploy flow", by="deployer")
    second = changes.create(draft(region="eu-de"))
    assert (first.id, second.id) == ("CHG0000001", "CHG0000002")
    assert changes.get("CHG0000001") == first
    assert [cr.id for cr in changes.list()] == ["CHG0000001", "CHG0000002"]
    assert git_in(bare, "show", "main:changes/CHG0000001.json").encode() == first.to_json() + b"\n"
    markdown = git_in(bare, "show", "main:changes/CHG0000002.md")
    assert markdown.startswith("# CHG0000002: deploy to prod / eu-de")
    subject, author = git_in(bare, "log", "--format=%s|%an", "main").splitlines()[-1].split("|")
    assert subject == "CHG0000001: filed by the deploy flow" and author == "deployer"


def test_concurrent_creates_get_distinct_ids(bare: Path, tmp_path: Path) -> None:
    count = 20

    def mirror(i: int) -> GitChangeManagement:
        cache = tmp_path / ("shared" if i % 5 == 0 else f"cache-{i}")
        block = GitChangeManagement(remote_url=bare.as_uri(), cache_dir=str(cache))
        block.git  # noqa: B018  (open the mirror before the race starts)
        return block

    created, errors = race(count, mirror, lambda i, b: b.create(draft(region=f"region-{i}")))
    assert errors == []
    assert sorted(cr.id for cr in created) == [f"CHG{n:07d}" for n in range(1, count + 1)]
    stored = GitChangeManagement(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "x")).list()
    # each id holds the record its creator built (no creator's record was overwritten)
    assert {cr.id: cr.region for cr in stored} == {cr.id: cr.region for cr in created}
    _one_commit_each_and_all_shown(bare, [cr.id for cr in created])


def _one_commit_each_and_all_shown(bare: Path, ids: list[str]) -> None:
    """Each CR is one commit on its own shard; main shows them all (a publish that won the
    race on main carries the others' along, so main may hold fewer commits than CRs)."""
    for change_id in ids:
        log = git_in(
            bare, "log", "--format=%s", shard_branch(change_id), "--", f"changes/{change_id}.json"
        )
        assert log.splitlines() == [f"{change_id}: change request created"]
    shown = git_in(bare, "ls-tree", "--name-only", "main", "changes/").split()
    assert shown == sorted(f"changes/{i}.{ext}" for i in ids for ext in ("json", "md"))
    assert 1 <= int(git_in(bare, "rev-list", "--count", "main")) <= len(ids)
    assert git_in(bare, "rev-list", "--merges", "--all") == ""
    # every id's ticket is gone with the push that filed it; objects written without git are
    # sound (a pack and loose objects written in Python, checked by git itself)
    assert git_in(bare, "for-each-ref", "refs/changeflow/") == git_in(
        bare, "for-each-ref", "refs/changeflow/last-change-id"
    )
    git_in(bare, "fsck", "--strict", "--no-dangling")


def test_update_is_one_commit_and_git_log_is_the_audit_trail(
    changes: GitChangeManagement, bare: Path
) -> None:
    cr = changes.create(draft())
    approved = cr.model_copy(
        update={
            "state": ChangeState.scheduled,
            "approvals": [Approval(by="alice", decision="approved", comment="ok")],
        }
    )
    before = int(git_in(bare, "rev-list", "--count", "main"))
    changes.update(approved, "approved by alice: evidence complete", by="alice")
    assert int(git_in(bare, "rev-list", "--count", "main")) == before + 1
    assert git_in(bare, "show", "--stat", "--format=", "main").count("changes/CHG0000001") == 2
    assert changes.get(cr.id) == approved
    assert "approved by alice" in git_in(bare, "show", "main:changes/CHG0000001.md")
    log = git_in(bare, "log", "--format=%an: %s", "main", "--", "changes/CHG0000001.json")
    assert log.splitlines() == [
        "alice: CHG0000001: approved by alice: evidence complete",
        "changeflow: CHG0000001: change request created",
    ]
    history = changes.history(cr.id)
    assert [h.author for h in history] == [
        "alice <changeflow@localhost>",
        "changeflow <changeflow@localhost>",
    ]
    assert "state: scheduled" in history[0].message
    # writing the same state again changes nothing
    changes.update(approved, "approved again")
    assert int(git_in(bare, "rev-list", "--count", "main")) == before + 1


def test_unknown_change_requests_are_bad_input(changes: GitChangeManagement) -> None:
    with pytest.raises(BadInput, match="unknown change request CHG0000001"):
        changes.get("CHG0000001")  # nothing at all yet
    assert changes.list() == []
    cr = changes.create(draft())
    with pytest.raises(BadInput, match="unknown change request CHG0000009"):
        changes.get("CHG0000009")
    with pytest.raises(BadInput):
        changes.get("../etc/passwd")
    with pytest.raises(BadInput):
        changes.update(cr.model_copy(update={"id": "CHG0000042"}), "never filed")
    assert changes.history("CHG0000009") == []


def test_link_names_the_record_without_credentials(tmp_path: Path) -> None:
    cr = draft()("CHG0000007")
    plain = GitChangeManagement(remote_url="https://git.example/org/changes.git")
    assert plain.link(cr) == "https://git.example/org/changes.git#changes/CHG0000007.json"
    secret = GitChangeManagement(remote_url="https://bot:s3cr3t-token@git.example/changes.git")
    link = secret.link(cr)
    assert "s3cr3t-token" not in link and "bot" not in link
    assert link == "https://***@git.example/changes.git#changes/CHG0000007.json"


def test_decision_is_the_records_own(changes: GitChangeManagement) -> None:
    cr = changes.create(draft())
    assert changes.decision(cr.id) is None
    approval = Approval(by="alice", decision="approved", comment="ok")
    changes.update(cr.model_copy(update={"approvals": [approval]}), "approved by alice")
    assert changes.decision(cr.id) == approval
    with pytest.raises(BadInput, match="unknown change request CHG0000009"):
        changes.decision("CHG0000009")


def test_from_env(monkeypatch: pytest.MonkeyPatch, bare: Path) -> None:
    monkeypatch.delenv("CHANGEFLOW_CHANGE_REPO_URL", raising=False)
    with pytest.raises(BadInput, match="CHANGEFLOW_CHANGE_REPO_URL"):
        GitChangeManagement.from_env()
    monkeypatch.setenv("CHANGEFLOW_CHANGE_REPO_URL", bare.as_uri())
    assert GitChangeManagement.from_env().list() == []
    assert GitIncidents.from_env().incidents() == []


def _incidents(today: date, *findings: str) -> list[Incident]:
    uri = "artifact://app@sha256:" + "a" * 64
    record = Evidence(
        date=datetime(2026, 11, 1, tzinfo=UTC),
        evidence_type_id="com.ibm.static_scan",
        origin=EvidenceOrigin(scope="ci-1"),
        details=EvidenceDetails(result=EvidenceResult.failure, tool="bandit"),
        assets=[asset_id(uri)],
        findings=[Finding(id=f, severity=Severity.high) for f in findings],
    ).sealed()
    return incidents_from_evidence([record], {asset_id(uri): uri}, GracePeriods(), today)


@pytest.fixture
def incidents(bare: Path, tmp_path: Path) -> GitIncidents:
    return GitIncidents(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "cache"))


def test_incidents_are_stored_one_commit_per_reconciliation(
    changes: GitChangeManagement, incidents: GitIncidents, bare: Path, tmp_path: Path
) -> None:
    assert incidents.incidents() == []
    assert incidents.put_incidents([], "nothing") is None
    changes.create(draft())
    today = date(2026, 11, 26)
    first = reconcile(incidents.incidents(), _incidents(today, "B105", "B301"), today)
    before = int(git_in(bare, "rev-list", "--count", "main"))
    incidents.put_incidents(first, "ci run ci-1", by="ci")
    assert int(git_in(bare, "rev-list", "--count", "main")) == before + 1
    files = git_in(bare, "ls-tree", "-r", "--name-only", "main", "incidents/").split()
    assert files == sorted(f"incidents/{i.id}.json" for i in first)
    assert (
        git_in(bare, "log", "-1", "--format=%an|%s", "main").strip() == "ci|incidents: ci run ci-1"
    )
    # another reader sees them; the CR ids are not disturbed by the incidents folder
    reader = GitIncidents(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "reader"))
    assert reader.incidents() == first
    assert changes.create(draft()).id == "CHG0000002"
    # B301 fixed a week later: one commit closes it, B105 keeps its found date
    later = date(2026, 12, 3)
    writes = reconcile(reader.incidents(), _incidents(later, "B105"), later)
    assert [w.finding_id for w in writes] == ["B301"]
    incidents.put_incidents(writes, "ci run ci-2")
    stored = {i.finding_id: i for i in incidents.incidents()}
    assert (stored["B301"].state, stored["B301"].closed) == ("closed", later)
    assert (stored["B105"].state, stored["B105"].found) == ("open", today)


def test_tampered_incident_is_an_integrity_error(incidents: GitIncidents) -> None:
    (incident,) = _incidents(date(2026, 11, 26), "B105")
    other = incident.model_copy(update={"id": "INC-" + "0" * 24})
    incidents.git.commit("main", lambda _p: {f"incidents/{incident.id}.json": other.to_json()}, "x")
    with pytest.raises(IntegrityError, match="holds INC-0000"):
        incidents.incidents()
    incidents.git.commit("main", lambda _p: {f"incidents/{incident.id}.json": b"{}"}, "y")
    with pytest.raises(IntegrityError, match="is not an incident"):
        incidents.incidents()


def test_identical_concurrent_drafts_still_get_distinct_ids(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two writers building the same record on the same parent within the same second would
    # build the same commit; its push then "succeeds" for both and one CR silently vanishes.
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-11-26T12:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-11-26T12:00:00Z")
    created = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def same(change_id: str) -> ChangeRequest:
        return ChangeRequest(
            id=change_id, environment="prod", region="us-south", deployment_run_id="deploy-1",
            created=created,
        )  # fmt: skip

    count = 6

    def mirror(i: int) -> GitChangeManagement:
        block = GitChangeManagement(remote_url=bare.as_uri(), cache_dir=str(tmp_path / f"{i}"))
        block.git  # noqa: B018
        return block

    ids, errors = race(count, mirror, lambda i, block: block.create(same).id)
    assert errors == []
    assert sorted(ids) == [f"CHG{n:07d}" for n in range(1, count + 1)]
    _one_commit_each_and_all_shown(bare, ids)


def test_a_filing_that_fails_releases_its_id_ticket(
    changes: GitChangeManagement, bare: Path
) -> None:
    def broken(change_id: str) -> ChangeRequest:
        raise BadInput(f"cannot draft {change_id}")

    with pytest.raises(BadInput, match="cannot draft CHG0000001"):
        changes.create(broken)
    assert "tickets" not in git_in(bare, "for-each-ref", "refs/changeflow/")
    # nobody waits for it: the next filing is shown on main at once, after the id's gap
    cr = changes.create(draft())
    assert cr.id == "CHG0000002"
    assert "changes/CHG0000002.json" in git_in(bare, "ls-tree", "-r", "--name-only", "main")


def test_tickets_of_writers_in_flight_defer_publishing_to_the_last_one(
    changes: GitChangeManagement, bare: Path
) -> None:
    changes.create(draft())
    # another writer took an id a moment ago and has not landed: it will publish this one too
    other = push_ticket(bare, 1.0, "9")
    cr = changes.create(draft())
    assert cr.id == "CHG0000002"
    assert "CHG0000002" in git_in(bare, "ls-tree", "-r", "--name-only", "changes/02")
    assert "CHG0000002" not in git_in(bare, "ls-tree", "-r", "--name-only", "main")
    # a ticket older than YOUNG_S holds nobody back (its writer may have died): the next
    # filing publishes, carrying the one before; one older than STALE_S is deleted
    git_in(bare, "update-ref", "-d", other)
    from blocks.change_publish import YOUNG_S
    from blocks.gitrepo.counter import STALE_S

    old = push_ticket(bare, YOUNG_S + 1, "9")
    dead = push_ticket(bare, STALE_S + 1)
    third = changes.create(draft())
    shown = git_in(bare, "ls-tree", "-r", "--name-only", "main", "changes/")
    assert {f"changes/{i}.json" for i in ("CHG0000002", third.id)} <= set(shown.split())
    left = git_in(bare, "for-each-ref", "--format=%(refname)", "refs/changeflow/").split()
    assert old in left and dead not in left


def _file_on_main(legacy: GitRemote, cr: ChangeRequest, message: str) -> None:
    """What a version before shards wrote: the record and its Markdown on main, one commit."""
    from changeflow.render import render_change_request

    record, markdown = f"changes/{cr.id}.json", f"changes/{cr.id}.md"
    files = {record: cr.to_json() + b"\n", markdown: render_change_request(cr).encode()}
    legacy.commit("main", lambda _parent: files, f"{cr.id}: {message}")


def test_a_repo_from_before_shards_is_listed_then_indexed_on_the_first_write(
    changes: GitChangeManagement, bare: Path, tmp_path: Path
) -> None:
    legacy = GitRemote(bare.as_uri(), tmp_path / "legacy")
    old = [draft("prod")("CHG0000001"), draft("staging")("CHG0000002"), draft("prod")("CHG0000003")]
    for cr in old:
        _file_on_main(legacy, cr, "change request created")
    closed = old[0].model_copy(update={"state": ChangeState.closed})
    _file_on_main(legacy, closed, "closed")
    before = git_in(bare, "rev-parse", "main").strip()
    # read before any write: every listing sees them, from main
    assert [cr.id for cr in changes.list()] == ["CHG0000001", "CHG0000002", "CHG0000003"]
    assert [cr.id for cr in changes.list("prod", open_only=True)] == ["CHG0000003"]
    assert changes.get("CHG0000001") == closed
    # the first write indexes them on their shards, in one push with main's mark
    new = changes.create(draft("prod"))
    assert new.id == "CHG0000004"
    assert git_in(bare, "show", "main:.changeflow/before-shards").strip() == before
    for cr in (closed, *old[1:]):
        shard = shard_branch(cr.id)
        assert (
            git_in(bare, "show", f"{shard}:changes/{cr.id}.json").encode() == cr.to_json() + b"\n"
        )
        assert git_in(bare, "show", f"{shard}:environments/{cr.environment}/{cr.id}.json")
    assert "CHG0000001" not in git_in(bare, "ls-tree", "-r", "--name-only", "changes/01", "open/")
    reader = GitChangeManagement(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "reader"))
    assert [cr.id for cr in reader.list("prod", open_only=True)] == ["CHG0000003", "CHG0000004"]
    assert [cr.id for cr in reader.list("staging")] == ["CHG0000002"]
    assert reader.list() == [closed, *old[1:], new]
    # a CR's history is its shard's log, then main's before shards (not the index commit)
    changes.update(closed.model_copy(update={"description": "annotated"}), "annotated")
    assert [c.message.splitlines()[0] for c in reader.history("CHG0000001")] == [
        "CHG0000001: annotated",
        "CHG0000001: closed",
        "CHG0000001: change request created",
    ]
    assert [c.message.splitlines()[0] for c in reader.history("CHG0000004")] == [
        "CHG0000004: change request created"
    ]
    # main shows every CR once, and the index commit says what it did
    subjects = git_in(bare, "log", "--format=%s", "main").splitlines()
    assert "index the change requests filed before shards (3)" in subjects
    shown = git_in(bare, "ls-tree", "--name-only", "main", "changes/").split()
    assert shown == sorted(f"changes/CHG000000{n}.{e}" for n in range(1, 5) for e in ("json", "md"))
    git_in(bare, "fsck", "--strict", "--no-dangling")


def test_a_repo_already_on_shards_gets_its_older_crs_indexed_too(
    changes: GitChangeManagement, bare: Path, tmp_path: Path
) -> None:
    # a repo where the first version with shards filed CR 2 after CR 1 was filed on main: a
    # counter, a shard and main's published heads, but no mark, and CR 1 on main only
    legacy = GitRemote(bare.as_uri(), tmp_path / "legacy")
    first = draft("prod")("CHG0000001")
    _file_on_main(legacy, first, "change request created")
    second = draft("prod")("CHG0000002")
    from blocks.change_layout import files_of

    head = legacy.commit("changes/02", lambda _p: files_of(second), "CHG0000002: created")
    _file_on_main(legacy, second, "change request created")
    published = f"refs/heads/changes/02 {head}\n".encode()
    legacy.commit("main", lambda _p: {".changeflow/published": published}, "published")
    counter = legacy._hash_blobs([b"2\n"])[0]
    assert legacy.push_refs({"refs/changeflow/last-change-id": counter}, {})
    third = changes.create(draft("prod"))
    assert third.id == "CHG0000003"
    assert [cr.id for cr in changes.list("prod")] == ["CHG0000001", "CHG0000002", "CHG0000003"]
    assert git_in(bare, "log", "--format=%s", "changes/01").splitlines() == [
        "index the change requests filed before shards"
    ]
    assert git_in(bare, "log", "--format=%s", "changes/02").splitlines() == ["CHG0000002: created"]


def test_updating_a_cr_from_before_shards_first_keeps_its_history(
    changes: GitChangeManagement, bare: Path, tmp_path: Path
) -> None:
    legacy = GitRemote(bare.as_uri(), tmp_path / "legacy")
    old = [draft("prod")("CHG0000001"), draft("prod")("CHG0000002")]
    for cr in old:
        _file_on_main(legacy, cr, "change request created")
    # the first write after the upgrade is an update: the old CRs are indexed before it
    changes.update(old[0].model_copy(update={"description": "annotated"}), "annotated")
    assert [c.message.splitlines()[0] for c in changes.history("CHG0000001")] == [
        "CHG0000001: annotated",
        "CHG0000001: change request created",
    ]
    assert git_in(bare, "log", "--format=%s", "changes/01").splitlines() == [
        "CHG0000001: annotated",
        "index the change requests filed before shards",
    ]
    assert [cr.id for cr in changes.list("prod", open_only=True)] == ["CHG0000001", "CHG0000002"]


def test_of_writers_landing_together_the_baton_holder_publishes(
    changes: GitChangeManagement, bare: Path, tmp_path: Path
) -> None:
    import time

    from blocks.change_layout import files_of
    from blocks.change_publish import BATON, settle

    cr = changes.create(draft())
    other = GitChangeManagement(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "other"))
    # a filing landed on its shard, not shown yet; another writer holds the baton: it will look
    # at the shards again after letting go, so this one leaves main alone
    second = draft()("CHG0000002")
    head = other.git.commit("changes/02", lambda _p: files_of(second), "CHG0000002: created")
    now = other.git._hash_blobs([f"{int(time.time())}\n".encode()])[0]
    assert other.git.push_refs({BATON: now}, {})
    settle(other.git, "changes/02", head)
    assert "CHG0000002" not in git_in(bare, "ls-tree", "-r", "--name-only", "main")
    # a baton from an hour ago is its dead holder's: taken over, released with the publish
    stale = other.git._hash_blobs([f"{int(time.time()) - 3600}\n".encode()])[0]
    assert other.git.push_refs({BATON: stale}, {BATON: now})
    settle(other.git, "changes/02", head)
    assert "changes/CHG0000002.json" in git_in(bare, "ls-tree", "-r", "--name-only", "main")
    assert BATON not in git_in(bare, "for-each-ref", "refs/changeflow/")
    assert [c.id for c in changes.list()] == [cr.id, "CHG0000002"]
