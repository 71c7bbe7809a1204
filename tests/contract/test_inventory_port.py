"""The inventory's contract, run against the git inventory on a bare remote and the in-memory
one: entries, deltas, promotions and labels as the flows rely on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from port_cases import Opened, entry, open_inventory
from stack_support import race

from changeflow.errors import BadInput, NotReady
from changeflow.inventory_rules import InventoryCheck
from changeflow.models import Promotion
from changeflow.ports import Inventory


@pytest.fixture(params=["git", "memory"])
def inventory(request: pytest.FixtureRequest, tmp_path: Path) -> Opened[Inventory]:
    return open_inventory(request, tmp_path)


def _promotion(pid: str, target: str = "staging", **fields: object) -> Promotion:
    return Promotion.model_validate(
        {"id": pid, "source": "master", "target": target, "assigned_to": "release-manager",
         "description": "weekly release", "backout_plan": "redeploy the previous label", **fields}
    )  # fmt: skip


def test_entries_are_recorded_on_a_branch(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    assert isinstance(store, Inventory)
    assert store.resolve("master") is None
    head = store.add_entries([entry("app-a"), entry("team/app-b")], message="ci build 1")
    assert head is not None and store.resolve("master") == head
    assert store.get("app-a", "master") == entry("app-a")
    assert store.get("nope", "master") is None
    assert store.entries(head) == {"app-a": entry("app-a"), "team/app-b": entry("team/app-b")}
    assert store.add_entries([entry("app-a")]) == head  # the same content: no new commit
    second = store.add_entries([entry("app-a", "2.0.0")])
    assert second not in (None, head)
    assert store.get("app-a", head) == entry("app-a")
    assert store.validate("master") == InventoryCheck(commit=second or "", checked=2)
    for bad in (
        lambda: store.add_entries([entry("x"), entry("x", "2")]),
        lambda: store.add_entries([entry("app-a/inner")]),  # app-a is an entry
        lambda: store.add_entries([entry("y")], branch="bad branch"),
        lambda: store.entries("no-such-branch"),
        lambda: store.get("../etc", "master"),
        lambda: store.validate("no-such-branch"),
    ):
        with pytest.raises(BadInput):
            bad()


def test_concurrent_writers_lose_noentry(inventory: Opened[Inventory]) -> None:
    _, errors = race(
        4,
        lambda i: inventory.another(),
        lambda i, store: store.add_entries([entry(f"team-{i}/app")], message=f"ci {i}"),
    )
    assert errors == []
    assert sorted(inventory.another().entries("master")) == [f"team-{i}/app" for i in range(4)]


def test_a_delta_holds_what_changed_between_two_refs(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    store.add_entries([entry("app-a"), entry("app-b"), entry("lib/c")])
    store.add_label("dev_latest", "master")
    store.add_entries([entry("app-a", "2.0.0"), entry("app-d")])
    delta = store.delta("dev_latest", "master")
    assert (delta.changed, delta.added, delta.deleted) == (["app-a"], ["app-d"], [])
    assert delta.entries == {"app-a": entry("app-a", "2.0.0"), "app-d": entry("app-d")}
    everything = store.delta(None, "master")
    assert everything.added == ["app-a", "app-b", "app-d", "lib/c"]
    assert store.delta("us-south_dev_latest", "master").added == everything.added
    assert store.delta("master", "master").is_empty
    with pytest.raises(BadInput):
        store.delta(None, "no-such-branch")


def test_a_promotion_carries_what_the_target_lacks(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    head = store.add_entries([entry("app-a"), entry("app-b"), entry("db/schema")])
    assert store.promotable("master", "staging") == ["app-a", "app-b", "db/schema"]
    assert store.promotable("master", "staging", include=["app-*"], exclude=["app-b"]) == ["app-a"]
    labels, master = store.labels(), store.resolve("master")
    for bad in (("no-such-env", "prod"), ("master", "master"), ("master", "bad target")):
        with pytest.raises(BadInput):
            store.promotable(*bad)
    assert (store.labels(), store.resolve("master"), store.resolve("staging")) == (
        labels, master, None,
    )  # fmt: skip
    record = store.promote(_promotion("p1", exclude=["db/*"]))
    assert record.entries == ["app-a", "app-b"] and record.source_commit == head
    assert store.entries("staging") == {"app-a": entry("app-a"), "app-b": entry("app-b")}
    assert store.promotion("staging") == record
    assert store.promotion("no-such-env") is None
    assert store.promote(_promotion("p2")).entries == ["db/schema"]
    with pytest.raises(NotReady, match="nothing to promote from master to staging"):
        store.promotable("master", "staging")
    with pytest.raises(NotReady):
        store.promote(_promotion("p3"))
    store.add_entries([entry("app-b", "2.0.0")])
    assert store.promote(_promotion("p4")).entries == ["app-b"]
    assert store.get("app-b", "staging") == entry("app-b", "2.0.0")


def test_a_deletion_is_promoted(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    store.add_entries([entry("app-a"), entry("app-b"), entry("lib/c")])
    store.promote(_promotion("p1"))
    with pytest.raises(BadInput):
        store.remove_entries(["../etc"])
    with pytest.raises(BadInput):
        store.remove_entries(["app-a"], branch="no-such-branch")
    head = store.remove_entries(["app-b", "lib/c"], message="retire app-b and lib/c")
    assert sorted(store.entries("master")) == ["app-a"]
    assert store.remove_entries(["app-b"]) == head  # already gone: nothing to commit
    assert store.promotable("master", "staging") == []  # nothing to copy, two to delete
    record = store.promote(_promotion("p2", exclude=["lib/*"]))
    assert (record.entries, record.deletions) == ([], ["app-b"])
    assert sorted(store.entries("staging")) == ["app-a", "lib/c"]
    assert store.promotion("staging") == record
    # left for review while the target moves: the deletion is applied on its new head too
    store.add_entries([entry("app-a", "2.0.0")])
    store.promote(_promotion("rel-8", include=["lib/*"]), merge=False)
    store.promote(_promotion("p3", include=["app-a"]))
    store.merge_promotion("rel-8")
    assert store.entries("staging") == {"app-a": entry("app-a", "2.0.0")}
    with pytest.raises(NotReady):
        store.promote(_promotion("p4"))


def test_a_promotion_for_review_is_merged_later(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    store.add_entries([entry("app-a"), entry("app-b")])
    store.promote(_promotion("p1", include=["app-a"]))
    record = store.promote(_promotion("rel-7", include=["app-b"]), merge=False)
    assert store.promotion("promotion/staging/rel-7") == record
    assert store.get("app-b", "staging") is None
    with pytest.raises(BadInput):
        store.promote(_promotion("rel-7"), merge=False)  # already open
    store.add_entries([entry("app-a", "2.0.0")])
    store.promote(_promotion("p3", include=["app-a"]))  # the target moves meanwhile
    head = store.merge_promotion("rel-7")
    assert head == store.resolve("staging")
    assert store.entries("staging") == {
        "app-a": entry("app-a", "2.0.0"),
        "app-b": entry("app-b"),
    }
    promoted = store.promotion("staging")
    assert promoted is not None and promoted.id == "rel-7"
    with pytest.raises(BadInput, match="unknown promotion rel-7"):
        store.merge_promotion("rel-7")


def test_labels_mark_commits(inventory: Opened[Inventory]) -> None:
    store = inventory.store
    first = store.add_entries([entry("app-a")])
    second = store.add_entries([entry("app-a", "2.0.0")])
    assert first and second
    assert store.add_label("prod_latest", first) == first
    assert store.add_label("us-south_prod_latest", "prod_latest") == first
    assert store.resolve("prod_latest") == first
    with pytest.raises(BadInput, match="already exists"):
        store.add_label("prod_latest", second)
    assert store.move_labels(["prod_latest"], "master") == second
    assert store.move_labels(["eu-de_prod_latest"], first) == first  # a first deployment
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
            store.move_labels([bad], "master")
    with pytest.raises(BadInput, match="unknown label"):
        store.delete_label("never-made")
    with pytest.raises(BadInput):
        store.add_label("run-1", "no-such-ref")
    with pytest.raises(BadInput):
        store.move_labels(["run-1"], "no-such-ref")
    with pytest.raises(BadInput, match="hidden by the branch"):
        store.add_label("master", "master")


def test_labels_move_together_or_not_at_all(inventory: Opened[Inventory]) -> None:
    """A deploy moves its region's, its environment's and its CR's labels in one write: a
    crash or a refusal never leaves some moved (a rerun would take the deployment as done)."""
    store = inventory.store
    first = store.add_entries([entry("app-a")])
    second = store.add_entries([entry("app-a", "2.0.0")])
    assert first and second
    assert store.move_labels(["r1_prod_latest", "prod_latest", "CHG0000001"], first) == first
    labels = ["r1_prod_latest", "prod_latest", "CHG0000002", "master"]  # the last: a branch
    with pytest.raises(BadInput, match="hidden by the branch"):
        store.move_labels(labels, second)
    with pytest.raises(BadInput):
        store.move_labels(["r1_prod_latest", "bad label"], second)
    assert store.labels() == dict.fromkeys(["CHG0000001", "prod_latest", "r1_prod_latest"], first)
    assert store.move_labels(["r1_prod_latest", "prod_latest", "CHG0000002"], second) == second
    assert store.labels() == {
        "CHG0000001": first, "CHG0000002": second, "prod_latest": second, "r1_prod_latest": second
    }  # fmt: skip


def test_a_label_is_created_by_one_writer_only(inventory: Opened[Inventory]) -> None:
    # each writer labels another commit: a lost compare-and-swap would show as a moved label
    commits = [inventory.store.add_entries([entry("app-a", f"1.0.{i}")]) for i in range(4)]

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


def test_origins_name_the_promotion_or_direct_write_that_brought_each_entry(
    inventory: Opened[Inventory],
) -> None:
    store = inventory.store
    store.add_entries([entry(n) for n in ("app-a", "app-b", "app-c", "app-d", "old")])
    store.promote(_promotion("p1"))  # everything
    deployed = store.resolve("staging")
    store.add_entries([entry("app-a", "2"), entry("app-b", "2")])
    store.remove_entries(["old"])
    store.promote(_promotion("p2", include=["app-a", "old"], priority="high"))
    store.promote(_promotion("p3", include=["app-b"]))
    direct = store.add_entries([entry("app-c", "9")], branch="staging")  # straight to staging
    assert direct is not None and direct == store.resolve("staging")
    names = ["app-a", "app-b", "app-c", "old", "never-changed"]

    origins = store.origins(deployed, "staging", names)

    by_entry = {a.entry: a.promotion for a in origins.arrivals}
    assert by_entry == {"app-a": "p2", "app-b": "p3", "app-c": None, "old": "p2"}
    assert [a.commit for a in origins.arrivals if a.entry == "app-c"] == [direct]
    assert [p.id for p in origins.promotions] == ["p3", "p2"]  # newest first
    assert origins.promotions[1].deletions == ["old"]
    # since the start, p1 brought what nothing changed after it
    everything = store.origins(None, "staging", ["app-a", "app-c", "app-d", "never-changed"])
    assert [a.promotion for a in everything.arrivals] == ["p2", None, "p1"]
    assert [p.id for p in everything.promotions] == ["p2", "p1"]
    assert store.origins(deployed, "staging", []).arrivals == []
    with pytest.raises(BadInput):
        store.origins(None, "no-such-branch", ["app-a"])
