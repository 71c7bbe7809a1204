"""Domain rules: canonical JSON and ids, summaries, readiness, deltas, the CR lifecycle."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from changeflow.canonical import canonical_json, digest, digest_hex
from changeflow.change import close, record_decision, transition
from changeflow.delta import compute_delta, select_entries
from changeflow.errors import BadInput
from changeflow.evidence import make_evidence, new_entries
from changeflow.models import (
    Approval,
    Asset,
    ChangeRequest,
    ChangeState,
    CloseCategory,
    Finding,
    InventoryEntry,
    Severity,
    asset_id,
)
from changeflow.project import expand_command, load_environments
from changeflow.readiness import CheckLevel, EvidenceCheck, ReadinessPolicy, deployment_ready
from changeflow.summary import summarize

APP = Asset.for_uri("artifact://app.whl@sha256:" + "1" * 64)
LIB = Asset.for_uri("artifact://lib.whl@sha256:" + "2" * 64)


def ev(type_: str, result: str, day: int, asset: Asset = APP, **kw: object):  # type: ignore[no-untyped-def]
    return make_evidence(
        evidence_type_id=type_, result=result, tool="t", scope=f"ci-{day}", assets=[asset],
        date=datetime(2026, 11, day, tzinfo=UTC), **kw,
    )  # fmt: skip


def entry(name: str, sha: str = "a", commit: str = "c") -> InventoryEntry:
    return InventoryEntry(
        name=name, artifact="s3://b/k", version="1", type="file", sha256="sha256:" + sha * 64,
        repository_url="https://example.com/r", commit_sha=commit * 40, build_number="1",
        pipeline_run_id="ci-1", provenance="artifact://x@sha256:" + sha * 64,
    )  # fmt: skip


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert (
        digest(b"")
        == "sha256:" + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    with pytest.raises(ValueError):
        digest_hex("sha256:xyz")


def test_evidence_id_is_the_hash_of_its_content_without_id() -> None:
    record = ev("com.ibm.unit_tests", "success", 1)
    assert record.id == record.computed_id()
    assert record.is_sealed()
    changed = record.model_copy(update={"evidence_type_version": "2"})
    assert not changed.is_sealed()
    assert ev("com.ibm.unit_tests", "success", 1).id == record.id  # deterministic


def test_asset_id_and_type() -> None:
    assert APP.id == asset_id(APP.uri) and len(APP.id) == 64
    assert APP.type == "artifact"
    assert Asset.for_uri("https://h/o/r#" + "f" * 40).type == "commit"
    assert Asset.for_uri("docker://r/n@sha256:" + "0" * 64).type == "image"


def test_summary_keeps_only_the_latest_per_asset_and_type() -> None:
    records = [
        ev("com.ibm.unit_tests", "failure", 1),
        ev("com.ibm.unit_tests", "success", 3),
        ev("com.ibm.unit_tests", "failure", 2),
        ev("com.ibm.sbom", "success", 1),
        ev("com.ibm.unit_tests", "failure", 5, asset=LIB),
    ]
    summary = summarize(
        scope="d", environment="prod", region="r", assets={APP.id: APP.uri}, records=records
    )
    picked = {(i.evidence_type_id, i.result.value, i.date.day) for i in summary.evidence}
    assert picked == {("com.ibm.unit_tests", "success", 3), ("com.ibm.sbom", "success", 1)}


def _policy(*checks: tuple[str, CheckLevel]) -> ReadinessPolicy:
    return ReadinessPolicy(checks=[EvidenceCheck(evidence_type_id=t, level=lv) for t, lv in checks])


def test_readiness_blocks_on_failed_missing_pending_and_overdue() -> None:
    policy = _policy(
        ("com.ibm.unit_tests", CheckLevel.required),
        ("com.ibm.sbom", CheckLevel.required),
        ("com.ibm.static_scan", CheckLevel.required_if_present),
        ("com.ibm.perf", CheckLevel.recommended),
    )
    today = date(2026, 11, 26)

    def decide(*records):  # type: ignore[no-untyped-def]
        s = summarize(
            scope="d", environment="e", region="r", assets={APP.id: APP.uri}, records=records
        )
        return deployment_ready(s, policy, today=today)

    ok = decide(ev("com.ibm.unit_tests", "success", 1), ev("com.ibm.sbom", "success", 1))
    assert ok.ready and ok.warnings == [f"{APP.uri}: no com.ibm.perf evidence (recommended)"]
    missing = decide(ev("com.ibm.unit_tests", "success", 1))
    assert not missing.ready and "no com.ibm.sbom evidence" in missing.reasons[0]
    pending = decide(ev("com.ibm.unit_tests", "pending", 1), ev("com.ibm.sbom", "success", 1))
    assert not pending.ready and "pending" in pending.reasons[0]
    present_failing = decide(
        ev("com.ibm.unit_tests", "success", 1),
        ev("com.ibm.sbom", "success", 1),
        ev("com.ibm.static_scan", "failure", 1),
    )
    assert not present_failing.ready
    overdue = Finding(id="f", severity=Severity.high, due_date="2026-11-01")
    late = decide(
        ev("com.ibm.unit_tests", "success", 1, findings=[overdue]), ev("com.ibm.sbom", "success", 1)
    )
    assert not late.ready and "past due" in late.reasons[0]
    tampered = deployment_ready(
        summarize(scope="d", environment="e", region="r", assets={}, records=[]),
        policy, today=today, integrity_failures=["evidence x"],
    )  # fmt: skip
    assert not tampered.ready


def test_delta_and_partial_selection() -> None:
    before = {"a": entry("a"), "b": entry("b"), "c": entry("c")}
    after = {"a": entry("a"), "b": entry("b", sha="b"), "d": entry("d")}
    delta = compute_delta(before, after)
    assert (delta.changed, delta.added, delta.deleted) == (["b"], ["d"], ["c"])
    assert delta.updated == ["b", "d"]
    assert compute_delta(after, after).is_empty
    names = ["app/wheel", "app/sdist", "lib/wheel"]
    assert select_entries(names, ["app/*"], ["*/sdist"]) == ["app/wheel"]
    assert select_entries(names, [], []) == sorted(names)


def test_rebuilt_identical_artifacts_are_not_recorded_again() -> None:
    current = {"a": entry("a", commit="1")}
    rebuilt = [entry("a", commit="2"), entry("b")]
    assert [e.name for e in new_entries(rebuilt, current)] == ["b"]


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../b", ".hidden", "a/.git/x", "README.md", ""])
def test_bad_entry_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        entry(name)


def test_entry_digest_formats_are_checked() -> None:
    with pytest.raises(ValidationError, match="sha256"):
        InventoryEntry.model_validate({**entry("a").model_dump(), "sha256": "abc"})


def _cr() -> ChangeRequest:
    return ChangeRequest(id="CHG0000001", environment="prod", region="r", deployment_run_id="d")


def test_lifecycle_transitions_are_validated_and_recorded() -> None:
    cr = transition(_cr(), ChangeState.assess, by="a", why="filed")
    cr = transition(cr, ChangeState.authorize, by="a", why="assessed")
    with pytest.raises(BadInput, match="cannot move to closed"):
        transition(cr, ChangeState.closed, by="a", why="skip")
    with pytest.raises(BadInput, match="only an implemented change"):
        close(cr, CloseCategory.successful, by="a")
    cr = record_decision(cr, Approval(by="rm", decision="approved"))
    assert cr.state is ChangeState.scheduled
    with pytest.raises(BadInput, match="not waiting for approval"):
        record_decision(cr, Approval(by="rm", decision="approved"))
    cr = transition(cr, ChangeState.implement, by="a", why="go")
    cr = close(cr, CloseCategory.successful_issues, by="a")
    assert cr.state is ChangeState.closed and cr.close_category is CloseCategory.successful_issues
    assert [h["to"] for h in cr.history] == [
        "assess", "authorize", "scheduled", "implement", "review", "closed",
    ]  # fmt: skip


def test_rejection_cancels() -> None:
    cr = transition(
        transition(_cr(), ChangeState.assess, by="a", why=""), ChangeState.authorize, by="a", why=""
    )
    cr = record_decision(cr, Approval(by="rm", decision="rejected", comment="no"))
    assert cr.state is ChangeState.cancelled and cr.close_category is CloseCategory.cancelled


def test_environments_file_is_validated_on_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "environments.toml"
    good.write_text('[environments.prod]\nregions = ["us-south"]\ndeploy = ["echo", "{region}"]\n')
    envs = load_environments(good)
    assert envs.get("prod", "us-south").deploy == ["echo", "{region}"]
    with pytest.raises(BadInput, match="unknown environment 'qa'"):
        envs.get("qa")
    with pytest.raises(BadInput, match="unknown region"):
        envs.get("prod", "mars")
    bad = tmp_path / "bad.toml"
    bad.write_text('[environments.prod]\nregions = "us-south"\n')
    with pytest.raises(BadInput, match="regions"):
        load_environments(bad)
    assert expand_command(["x", "{environment}-{region}"], {"environment": "p", "region": "r"}) == [
        "x",
        "p-r",
    ]


def _placed(cr_id: str, region: str, state: ChangeState, commit: str, previous: str | None):  # type: ignore[no-untyped-def]
    return ChangeRequest(
        id=cr_id, environment="prod", region=region, deployment_run_id="d", state=state,
        inventory_commit=commit, previous_inventory_commit=previous,
    )  # fmt: skip


def test_a_rerun_carries_on_with_the_unfinished_cr_of_the_same_change() -> None:
    from changeflow.change import carry_on_with, resumable

    crs = [
        _placed("CHG0000001", "r1", ChangeState.closed, "b", "a"),
        _placed("CHG0000002", "r1", ChangeState.implement, "c", "b"),
        _placed("CHG0000003", "r2", ChangeState.implement, "c", "b"),
    ]
    assert resumable(crs, "prod", "r1", "c", "b").id == "CHG0000002"
    # the label already moved: the run deployed but did not close
    assert resumable(crs, "prod", "r1", "c", "c").id == "CHG0000002"
    assert resumable(crs, "prod", "r1", "d", "c") is None
    assert carry_on_with(crs[1], "prod", "r1") is crs[1]
    with pytest.raises(BadInput, match="not prod/r2"):
        carry_on_with(crs[1], "prod", "r2")
    with pytest.raises(BadInput, match="nothing left to deploy"):
        carry_on_with(crs[0], "prod", "r1")


def test_a_rerun_files_the_storage_check_its_crashed_run_recorded() -> None:
    from changeflow.change import deploy_pipeline, unfiled_storage_check

    def check(day: int, region: str = "r1", assets: tuple[Asset, ...] = (APP,)):  # type: ignore[no-untyped-def]
        return make_evidence(
            evidence_type_id="com.ibm.immutable_storage", result="success", tool="t",
            scope=f"deploy-{day}", pipeline_id=deploy_pipeline("prod", region),
            assets=list(assets), date=datetime(2026, 11, day, tzinfo=UTC),
        )  # fmt: skip

    filed = _placed("CHG0000001", "r1", ChangeState.closed, "b", "a").model_copy(
        update={"created": datetime(2026, 11, 10, 1, tzinfo=UTC)}
    )
    filed_with_cr, crashed = check(10), check(12)
    others = [
        check(13, region="r2"),
        check(14, assets=(APP, LIB)),
        ev("com.ibm.sbom", "success", 15),
    ]
    records = [filed_with_cr, crashed, *others]
    assert unfiled_storage_check(records, [filed], "prod", "r1", [APP.id]) == crashed
    assert unfiled_storage_check([filed_with_cr], [filed], "prod", "r1", [APP.id]) is None
    assert unfiled_storage_check(records, [], "prod", "r1", [APP.id, LIB.id]) == others[1]
    assert unfiled_storage_check(records, [filed], "prod", "r1", [LIB.id]) is None


def test_the_runs_own_evidence_is_listed_once() -> None:
    own = ev("com.ibm.immutable_storage", "success", 4)
    summary = summarize(
        scope="d", environment="prod", region="r", assets={APP.id: APP.uri},
        records=[own, ev("com.ibm.immutable_storage", "success", 2)], run_evidence=[own],
    )  # fmt: skip
    assert sorted(i.date.day for i in summary.evidence) == [2, 4]


def test_what_is_deployed_where_and_by_which_cr() -> None:
    from changeflow.change import deployed_by, deployed_regions

    labels = {"r1_prod_latest": "c", "r2_prod_latest": "b", "prod_latest": "c", "r1_qa_latest": "x"}
    assert deployed_regions(labels, "prod") == {"r1": "c", "r2": "b"}
    crs = [
        _placed("CHG0000001", "r1", ChangeState.closed, "c", "b"),
        _placed("CHG0000002", "r1", ChangeState.cancelled, "c", "b"),
    ]
    assert deployed_by(crs, "prod", "r1", "c").id == "CHG0000001"
    assert deployed_by(crs, "prod", "r2", "b") is None


def test_the_cr_awaiting_approval_is_the_one_whose_run_paused() -> None:
    from changeflow.change import awaiting_approval

    filed = _placed("CHG0000001", "r1", ChangeState.authorize, "c", "b")  # no run waits yet
    paused = filed.model_copy(update={"id": "CHG0000002", "flow_run_id": "run-1"})
    elsewhere = paused.model_copy(update={"id": "CHG0000003", "region": "r2"})
    assert awaiting_approval([filed, paused, elsewhere], "prod", "r1") is paused
    assert awaiting_approval([filed], "prod", "r1") is None
    decided = paused.model_copy(update={"state": ChangeState.scheduled})
    assert awaiting_approval([decided], "prod", "r1") is None


def test_a_rerun_of_a_build_finds_what_it_recorded_about_the_same_artifacts() -> None:
    from changeflow.evidence import recorded_by

    commit, wheel = Asset.for_uri("https://x/app#" + "a" * 40), Asset.for_uri("artifact://w@1")
    other_wheel = Asset.for_uri("artifact://w@2")

    def record(kind: str, scope: str, *assets: Asset, day: int = 1):  # type: ignore[no-untyped-def]
        when = datetime(2026, 1, day, tzinfo=UTC)
        return make_evidence(
            evidence_type_id=kind,
            result="success",
            tool="t",
            scope=scope,
            assets=list(assets),
            date=when,
        )

    unit = record("com.ibm.unit_tests", "ci-41", commit, wheel)
    later = record("com.ibm.unit_tests", "ci-41", commit, wheel, day=2)
    scan = record("com.ibm.static_scan", "ci-41", commit, other_wheel)  # not these bytes
    earlier_build = record("com.ibm.sbom", "ci-40", commit, wheel)
    found = recorded_by([later, unit, scan, earlier_build], "ci-41", [commit.id, wheel.id])
    assert found == {("com.ibm.unit_tests", "t"): later}


def test_each_change_to_a_cr_announces_what_the_rule_says() -> None:
    from changeflow.change import cancel, change_event, note

    filed = transition(_cr(), ChangeState.assess, by="changeflow", why="filed")
    assert change_event(None, filed) == ("change_request.created", {})
    waiting = transition(filed, ChangeState.authorize, by="changeflow", why="assessed")
    assert change_event(filed, waiting) is None  # moving along the lifecycle announces nothing
    auto = record_decision(waiting, Approval(by="changeflow", decision="approved", automatic=True))
    assert change_event(filed, auto) == (
        "change_request.approved",
        {"by": "changeflow", "automatic": True},
    )
    rejected = record_decision(waiting, Approval(by="rm", decision="rejected"))
    assert change_event(waiting, rejected) == ("change_request.rejected", {"by": "rm"})
    scheduled = record_decision(waiting, Approval(by="rm", decision="approved"))
    assert change_event(scheduled, note(scheduled, "waiting until Tuesday")) is None
    refused = cancel(scheduled, by="changeflow", why="frozen", notes="frozen")
    assert refused.close_category is CloseCategory.cancelled and refused.close_notes == "frozen"
    assert change_event(scheduled, refused) == ("change_request.closed", {})
    implementing = transition(scheduled, ChangeState.implement, by="changeflow", why="go")
    closed = close(implementing, CloseCategory.successful, by="changeflow")
    assert change_event(implementing, closed) == ("change_request.closed", {})
    with pytest.raises(BadInput, match="cannot move to cancelled"):
        cancel(closed, by="changeflow", why="too late")


def test_a_rescheduled_run_carries_on_with_the_cr_it_left_waiting() -> None:
    from changeflow.change import resumable

    waiting = _placed("CHG0000001", "r1", ChangeState.scheduled, "c", "b").model_copy(
        update={"flow_run_id": "run-1"}
    )
    # the environment's branch moved on while the run waited for its window
    assert resumable([waiting], "prod", "r1", "d", "b", run_id="run-1") is waiting
    assert resumable([waiting], "prod", "r1", "d", "b", run_id="run-2") is None
    assert resumable([waiting], "prod", "r2", "c", "b", run_id="run-1") is None
    done = waiting.model_copy(update={"state": ChangeState.closed})
    assert resumable([done], "prod", "r1", "c", "b", run_id="run-1") is None
