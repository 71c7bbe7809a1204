"""A deploy or a build that crashes at any step is completed by a rerun, with nothing twice."""

from __future__ import annotations

import contextvars
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from blocks import stores as config
from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.inventory import GitInventory
from blocks.source import commit_all
from changeflow.deploying import DEPLOY_STARTED, IN_DOUBT, RERUN_CONFIRMED, in_doubt
from changeflow.models import Asset, ChangeState, CloseCategory
from changeflow.readiness import IMMUTABLE_STORAGE
from changeflow.requests import BuildRequest, DeploymentRequest, RecordStores
from cli.changes import cr_approve, cr_reject
from cli.demo import sample_app_dir
from cli.local_stack import init_bare_repo
from flows.ci_flow import ci
from flows.deploy_flow import deploy

PROD_R1 = DeploymentRequest(environment="prod", region="r1")


class Crash(BaseException):
    """The injected failure: like a killed process, not an error a task would retry."""


def _crash_at(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str, when: Callable[..., bool]
) -> Callable[[], None]:
    """Make `owner.name` crash when `when` holds; return what disarms it."""
    original = getattr(owner, name)
    armed = [True]

    def crashing(*args: object, **kwargs: object) -> object:
        if armed[0] and when(*args, **kwargs):
            raise Crash(f"injected crash in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)
    return lambda: armed.__setitem__(0, False)


# One crash in each adapter and at the deploy command's boundary; every other step's crash runs
# on the in-memory stores (tests/flows/test_flow_logic.py, test_a_rerun_carries_on_...).
STEPS = {
    # summary stored, no CR filed yet
    "summary": (EvidenceLocker, "put_summary", lambda *a, **k: True),
    # implementing, the deploy command not started (its "deploying" record not written)
    "deploying": (
        GitChangeManagement,
        "update",
        lambda self, cr, message, **k: message == "deploying",
    ),
    # deployed, labels not moved, CR not closed
    "labels": (GitInventory, "move_labels", lambda *a, **k: True),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_rerun_completes_a_crashed_deploy(
    step: str, deployable: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = deployable()
    owner, name, when = STEPS[step]
    # retries inside the run would hide a single failure: the crash lasts for the whole run
    disarm = _crash_at(monkeypatch, owner, name, when)
    with pytest.raises(Crash):
        deploy(PROD_R1, RecordStores.from_env())
    disarm()

    outcome = deploy(PROD_R1, RecordStores.from_env())

    crs = config.change_management(None).list()
    assert [cr.id for cr in crs] == [outcome.change_request] == ["CHG0000001"]
    assert crs[0].state is ChangeState.closed
    assert crs[0].close_category is CloseCategory.successful
    inventory = config.inventory(None)
    assert inventory.resolve("r1_prod_latest") == inventory.resolve("prod")
    deployed = runs.read_text().split()
    assert set(deployed) == {"CHG0000001"}
    assert deployed == ["CHG0000001"]  # the deploy command ran once: a rerun never repeats it
    # the storage check a crashed run recorded before filing is the one its rerun filed
    locker = config.evidence_locker(None)
    summary = locker.get_summary(crs[0].evidence_summary_url, crs[0].evidence_summary_sha256)
    checks = {
        e.id
        for records in locker.evidence_for_assets(summary.assets).values()
        for e in records
        if e.evidence_type_id == IMMUTABLE_STORAGE
    }
    assert len(checks) == 1
    assert checks == {
        i.evidence_id for i in summary.evidence if i.evidence_type_id == IMMUTABLE_STORAGE
    }
    # a third run finds nothing left to do
    again = deploy(PROD_R1, RecordStores.from_env())
    assert again.state == "skipped"
    assert len(config.change_management(None).list()) == 1


def _person(decide: Callable[..., None]) -> tuple[threading.Thread, list[BaseException]]:
    """A person who, once a rerun waits on a CR whose deploy command may have run, decides."""
    changes, errors = config.change_management(None), []

    def person() -> None:
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                # the crashed run never waited: a run id on the CR is the rerun's, waiting
                waiting = [cr for cr in changes.list() if in_doubt(cr) and cr.flow_run_id]
                if waiting:
                    decide(waiting[0].id, by="carol", comment="looked at the target")
                    return
                time.sleep(0.2)
            raise TimeoutError("no rerun waited for a person")
        except BaseException as exc:
            errors.append(exc)

    # Prefect's settings (the API URL) live in the test's context: the person's thread gets a copy
    thread = threading.Thread(target=contextvars.copy_context().run, args=(person,))
    thread.start()
    return thread, errors


@pytest.mark.parametrize("again", [True, False], ids=["confirmed", "refused"])
def test_a_rerun_asks_a_person_when_the_deploy_command_may_have_run(
    again: bool, deployable: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = deployable()
    # the deploy command ran; the run died before the outcome was on the CR
    disarm = _crash_at(
        monkeypatch,
        GitChangeManagement,
        "update",
        lambda self, cr, message, **k: message == "deployed",
    )
    with pytest.raises(Crash):
        deploy(PROD_R1, RecordStores.from_env())
    disarm()
    [crashed] = config.change_management(None).list()
    assert in_doubt(crashed) and runs.read_text().split() == [crashed.id]

    person, errors = _person(cr_approve if again else cr_reject)
    outcome = deploy(PROD_R1, RecordStores.from_env())
    person.join()

    assert errors == []
    [cr] = config.change_management(None).list()
    assert outcome.change_request == cr.id
    events = [entry.get("deploy") for entry in cr.history]
    inventory = config.inventory(None)
    if again:
        # run again only because a person said so: twice, and the second time to the end
        assert runs.read_text().split() == [cr.id, cr.id]
        assert events.count(DEPLOY_STARTED) == 2 and RERUN_CONFIRMED in events
        assert cr.close_category is CloseCategory.successful
        assert inventory.resolve("r1_prod_latest") == inventory.resolve("prod")
    else:
        assert runs.read_text().split() == [cr.id]
        assert events.count(DEPLOY_STARTED) == 1
        assert cr.state is ChangeState.closed and cr.close_category is CloseCategory.unsuccessful
        assert IN_DOUBT in cr.close_notes and "carol" in cr.close_notes
        assert outcome.close_category == "unsuccessful"
        assert inventory.resolve("r1_prod_latest") is None  # the labels stay where they were


def test_a_rerun_of_a_crashed_build_records_each_check_once(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "sample-app"
    shutil.copytree(sample_app_dir(), app, ignore=shutil.ignore_patterns("dist", "reports"))
    repo_url = init_bare_repo(tmp_path / "remotes" / "sample-app.git")
    sha = commit_all(app, "sample-app", repo_url)
    request = BuildRequest(repo_url=repo_url, commit_sha=sha, build_number="41")
    locker = config.evidence_locker(None)
    stored: list[str] = []
    original = EvidenceLocker.put_evidence

    def counted(self: EvidenceLocker, record: Any, *args: Any, **kwargs: Any) -> Any:
        stored.append(record.id)
        return original(self, record, *args, **kwargs)

    monkeypatch.setattr(EvidenceLocker, "put_evidence", counted)
    # the third check's evidence is never written: the build dies there
    disarm = _crash_at(
        monkeypatch, EvidenceLocker, "put_evidence", lambda *a, **k: len(stored) == 2
    )
    with pytest.raises(Crash):
        ci(request, RecordStores.from_env())
    disarm()
    before_crash = list(stored)
    assert len(before_crash) == 2
    assert config.inventory(None).resolve("master") is None  # no entry recorded yet

    result = ci(request, RecordStores.from_env())
    again = ci(request, RecordStores.from_env())  # a build that already finished: nothing new

    commit = Asset.for_uri(f"{repo_url}#{sha}")
    about_commit = locker.evidence_for_assets([commit.id])[commit.id]
    kinds = [(e.evidence_type_id, e.details.tool) for e in about_commit]
    assert len(kinds) == len(set(kinds)) == len(result.evidence) == 4
    assert set(before_crash) < set(result.evidence.values()) == {e.id for e in about_commit}
    assert len(stored) == 4  # two before the crash, two after: none twice
    assert again.evidence == result.evidence and again.recorded == []
    assert sorted(config.inventory(None).entries("master")) == sorted(result.entries)
