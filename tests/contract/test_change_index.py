"""The CRs that deployed an artifact, found through each backend's index by digest.

`ChangeManagement.deployments` is what the gate, the earlier deployments of a delta, `trace`
and the audit read instead of every CR. The contract runs on the git repo (bare remotes), the
local ServiceNow that follows the Table API, and memory; then the attack: an index entry
forged to name a CR that did not deploy the artifact adds nothing, and the gate refuses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from port_cases import entry, open_changes
from pydantic import SecretStr
from servicenow_fake import ServiceNowFake

from blocks.change_index import artifact_folder
from blocks.change_layout import change_paths, shard_branch
from blocks.change_management import GitChangeManagement
from blocks.memory import MemoryChangeManagement, MemoryEvidenceStore
from blocks.servicenow import ServiceNowChangeManagement
from blocks.servicenow.changes import implementation_plan
from changeflow.errors import BadInput, IntegrityError
from changeflow.gate import gate_promotion
from changeflow.models import ChangeRequest, ChangeState, CloseCategory
from changeflow.ports import ChangeManagement
from tasks.history import deployment_history


def _sha(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


APP, LIB, OTHER, NEVER = _sha("app"), _sha("lib"), _sha("other"), _sha("never")


def _draft(environment: str, bom: dict[str, str]) -> Callable[[str], ChangeRequest]:
    return lambda i: ChangeRequest(
        id=i, environment=environment, region="r1", deployment_run_id="d", bom=bom,
        delta=sorted(bom),
    )  # fmt: skip


def _closed(store: ChangeManagement, cr: ChangeRequest) -> ChangeRequest:
    done = cr.model_copy(
        update={"state": ChangeState.closed, "close_category": CloseCategory.successful}
    )
    return store.update(done, "closed: deployed")


@pytest.fixture(params=["git", "servicenow", "memory"])
def changes(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, ChangeManagement]:
    opened = open_changes(request, tmp_path)
    return opened.kind, opened.store


def test_the_crs_that_deployed_a_digest_are_found(changes: tuple[str, ChangeManagement]) -> None:
    _, store = changes
    assert store.deployments([APP]) == []
    first = store.create(_draft("staging", {"app": APP}))
    both = store.create(_draft("prod", {"app": APP, "lib": LIB}))
    other = store.create(_draft("staging", {"other": OTHER}))
    store.create(_draft("staging", {}))  # only deletions: indexed under nothing
    first = _closed(store, first)  # the record read is the current one
    assert store.deployments([APP]) == [first, both]
    assert store.deployments({LIB, OTHER, NEVER}) == [both, other]
    assert store.deployments([APP, APP, LIB]) == [first, both]
    many = [_sha(f"unknown-{n}") for n in range(12)]  # git reads these by prefix first
    assert store.deployments([*many, APP]) == [first, both]
    assert store.deployments([*many, OTHER]) == [other] and store.deployments(many) == []
    assert store.deployments([NEVER]) == [] and store.deployments([]) == []
    for bad in (["sha256:" + "A" * 64], ["abc"], APP, [APP[:-1]], ["sha256:%' OR 1=1"]):
        with pytest.raises(BadInput):
            store.deployments(bad)


# -- the attack: a forged index entry ------------------------------------------------------


@dataclass
class Forgeable:
    """A backend, and how someone with write access adds an index entry of their own."""

    store: ChangeManagement
    forge: Callable[[ChangeRequest, str], None]


def _git(tmp_path: Path) -> Forgeable:
    remote = tmp_path / "changes.git"
    from cli.local_stack import init_bare_repo

    url = init_bare_repo(remote)
    store = GitChangeManagement(remote_url=url, cache_dir=str(tmp_path / "c1"))
    attacker = GitChangeManagement(remote_url=url, cache_dir=str(tmp_path / "c2")).git

    def forge(cr: ChangeRequest, sha: str) -> None:
        path = f"{artifact_folder(sha)}/{cr.id}"
        # on the CR's own shard, and on another one (where a record of that id is planted too)
        attacker.commit(shard_branch(cr.id), lambda _p: {path: b""}, "forged index entry")
        elsewhere = "changes/63" if shard_branch(cr.id) != "changes/63" else "changes/62"
        planted = cr.model_copy(update={"bom": {"app": sha}}).to_json()
        attacker.commit(
            elsewhere, lambda _p: {path: b"", change_paths(cr.id)[0]: planted}, "planted"
        )

    return Forgeable(store, forge)


def _servicenow(request: pytest.FixtureRequest) -> Forgeable:
    fake = ServiceNowFake(first_number=1).start()
    request.addfinalizer(fake.stop)
    store = ServiceNowChangeManagement(
        instance_url=fake.url, username=fake.username, password=SecretStr(fake.password)
    )

    def forge(cr: ChangeRequest, sha: str) -> None:
        (row,) = [r for r in fake.changes.values() if r["number"] == cr.id]
        row["implementation_plan"] += f"\n- app {sha}"  # edited by hand in the form

    return Forgeable(store, forge)


def _memory() -> Forgeable:
    store = MemoryChangeManagement()

    def forge(cr: ChangeRequest, sha: str) -> None:
        store._by_digest.setdefault(sha, set()).add(cr.id)

    return Forgeable(store, forge)


@pytest.fixture(params=["git", "servicenow", "memory"])
def forgeable(request: pytest.FixtureRequest, tmp_path: Path) -> Forgeable:
    if request.param == "git":
        return _git(tmp_path)
    return _servicenow(request) if request.param == "servicenow" else _memory()


def test_a_forged_index_entry_does_not_make_the_gate_pass(forgeable: Forgeable) -> None:
    store = forgeable.store
    # staging deployed app at APP, closed successful; app at NEVER was never deployed
    tested = _closed(store, store.create(_draft("staging", {"app": APP})))
    forgeable.forge(tested, NEVER)
    assert store.deployments([NEVER]) == []  # the index narrows, the CR decides
    assert store.deployments([APP]) == [tested]
    candidate = entry("app").model_copy(update={"sha256": NEVER})
    crs, results = deployment_history.fn(store, MemoryEvidenceStore(), {"app": NEVER})
    decision = gate_promotion(
        {"app": candidate}, source="staging", regions=["r1"], mode="every_region",
        crs=crs, results=results,
    )  # fmt: skip
    assert decision.eligible == []
    assert decision.refused == {"app": "never deployed to staging"}


def test_git_reads_only_the_crs_its_index_names(tmp_path: Path) -> None:
    """A CR the lookup does not need is never read: a broken one breaks `list`, not it."""
    forged = _git(tmp_path)
    store = forged.store
    wanted = store.create(_draft("staging", {"app": APP}))
    broken = store.create(_draft("prod", {"lib": LIB}))
    assert isinstance(store, GitChangeManagement)
    store.git.commit(
        shard_branch(broken.id), lambda _p: {change_paths(broken.id)[0]: b"{"}, "broken"
    )
    with pytest.raises(IntegrityError):
        store.list()
    assert store.deployments([APP]) == [wanted]


def test_a_servicenow_plan_too_long_for_its_field_is_still_found(
    request: pytest.FixtureRequest,
) -> None:
    store = _servicenow(request).store
    bom = {f"team/app-{n:03d}": _sha(f"app-{n}") for n in range(80)}
    cr = store.create(_draft("prod", bom))
    plan = implementation_plan(cr)
    assert len(plan) <= 4000 and _sha("app-79") not in plan
    assert plan.endswith("(more entries in the attached changeflow-cr.json)")
    assert store.deployments([_sha("app-79")]) == [cr]
    assert store.deployments([_sha("app-0"), NEVER]) == [cr]
    assert store.deployments([NEVER]) == []
