"""GitInventory against a real bare remote: entries, deltas, promotions and labels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from stack_support import git_in, race

from blocks.gitrepo import RefConflict
from blocks.inventory import GitInventory
from changeflow.errors import BadInput, IntegrityError, NotReady
from changeflow.inventory_rules import PROMOTION_FILE, is_entry_path
from changeflow.models import InventoryEntry, Promotion


@pytest.fixture
def inventory(bare: Path, tmp_path: Path) -> GitInventory:
    return GitInventory(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "cache"))


def entry(name: str, version: str = "1.0.0") -> InventoryEntry:
    digest = hashlib.sha256(f"{name}@{version}".encode()).hexdigest()
    return InventoryEntry(
        name=name,
        artifact=f"docker://registry.example/{name}@sha256:{digest}",
        version=version,
        type="image",
        sha256=f"sha256:{digest}",
        repository_url="https://git.example/org/app",
        commit_sha=hashlib.sha1(version.encode()).hexdigest(),
        build_number=version,
        pipeline_run_id=f"ci-{version}",
        provenance=f"docker://registry.example/{name}@sha256:{digest}",
    )


def promotion(pid: str, target: str = "staging", **kwargs: object) -> Promotion:
    return Promotion.model_validate(
        {
            "id": pid,
            "source": "master",
            "target": target,
            "assigned_to": "release-manager",
            "description": "weekly release",
            "backout_plan": "redeploy the previous tag",
            **kwargs,
        }
    )


def test_add_get_and_list_entries(inventory: GitInventory, bare: Path) -> None:
    head = inventory.add_entries([entry("app-a"), entry("team/app-b")], message="ci build 1")
    assert head == git_in(bare, "rev-parse", "master").strip()
    assert git_in(bare, "log", "-1", "--format=%s", "master").strip() == "ci build 1"
    assert inventory.get("app-a", "master") == entry("app-a")
    assert inventory.get("team/app-b", head or "") == entry("team/app-b")
    assert inventory.get("nope", "master") is None
    assert inventory.entries("master") == {
        "app-a": entry("app-a"),
        "team/app-b": entry("team/app-b"),
    }
    assert git_in(bare, "show", "master:app-a").encode() == entry("app-a").to_json() + b"\n"
    # the same content again makes no commit
    assert inventory.add_entries([entry("app-a")]) == head
    assert git_in(bare, "rev-list", "--count", "master").strip() == "1"
    second = inventory.add_entries([entry("app-a", "1.0.1")])
    assert second != head
    assert inventory.get("app-a", "master") == entry("app-a", "1.0.1")
    assert inventory.get("app-a", head or "") == entry("app-a")


def test_bad_input_is_refused(inventory: GitInventory) -> None:
    inventory.add_entries([entry("app-a")])
    with pytest.raises(BadInput):
        inventory.add_entries([entry("x"), entry("x", "2")])
    with pytest.raises(BadInput):
        inventory.add_entries([entry("app-a/inner")])  # app-a is an entry file
    with pytest.raises(BadInput):
        inventory.entries("no-such-branch")
    with pytest.raises(BadInput):
        inventory.get("../etc", "master")


def test_hidden_markdown_and_ignored_files_are_not_entries(inventory: GitInventory) -> None:
    inventory.add_entries([entry("app-a"), entry("tools/app-b")])
    inventory.git.commit(
        "master",
        lambda _parent: {
            "README.md": b"# inventory\n",
            "tools/NOTES.md": b"notes\n",
            ".hidden": b"x",
            ".github/workflow.yml": b"on: push\n",
            ".inventoryignore": b"# not entries\nscratch/\n*.txt\n",
            "scratch/junk.json": b"not json",
            "tools/list.txt": b"a\n",
        },
        "housekeeping",
    )
    assert sorted(inventory.entries("master")) == ["app-a", "tools/app-b"]
    assert inventory.get("tools/list.txt", "master") is None
    head = inventory.resolve("master")
    with pytest.raises(BadInput, match=r"matches \.inventoryignore"):
        inventory.add_entries([entry("app-c"), entry("scratch/app-d")])  # would vanish
    assert inventory.resolve("master") == head
    assert is_entry_path("a/b") and not is_entry_path("a/.b") and not is_entry_path("x.md")
    assert not is_entry_path("deep/dir/file.txt", ["*.txt"])
    assert not is_entry_path("scratch/x", ["/scratch"])


def test_a_file_that_is_not_an_entry_is_an_integrity_error(inventory: GitInventory) -> None:
    inventory.add_entries([entry("app-a")])
    inventory.git.commit("master", lambda _p: {"broken": b"{not json"}, "oops")
    with pytest.raises(IntegrityError, match="broken"):
        inventory.entries("master")
    inventory.git.commit(
        "master", lambda _p: {"broken": None, "alias": entry("app-a").to_json()}, "alias"
    )
    with pytest.raises(IntegrityError, match="names itself"):
        inventory.get("alias", "master")


def test_delta_between_two_refs(inventory: GitInventory) -> None:
    inventory.add_entries([entry("app-a"), entry("app-b"), entry("lib/c")])
    inventory.move_labels(["dev_latest"], "master")
    inventory.add_entries([entry("app-a", "2.0.0"), entry("app-d")])
    inventory.git.commit("master", lambda _p: {"app-b": None, "NEWS.md": b"x"}, "drop app-b")
    delta = inventory.delta("dev_latest", "master")
    assert (delta.changed, delta.added, delta.deleted) == (["app-a"], ["app-d"], ["app-b"])
    assert delta.entries == {"app-a": entry("app-a", "2.0.0"), "app-d": entry("app-d")}
    everything = inventory.delta(None, "master")
    assert everything.added == ["app-a", "app-d", "lib/c"] and not everything.deleted
    assert inventory.delta("us-south_dev_latest", "master").added == everything.added
    assert inventory.delta("master", "master").is_empty
    assert len(inventory.commits_between("dev_latest", "master")) == 2


def test_promote_creates_the_environment_branch(inventory: GitInventory, bare: Path) -> None:
    head = inventory.add_entries([entry("app-a"), entry("app-b")])
    record = inventory.promote(promotion("p1"))
    assert record.entries == ["app-a", "app-b"] and record.source_commit == head
    assert inventory.entries("staging") == inventory.entries("master")
    assert inventory.promotion("staging") == record
    assert inventory.branches() == ["master", "staging"]  # the promotion branch is gone
    assert inventory.environments() == ["staging"]
    assert git_in(bare, "rev-list", "--merges", "staging") == ""
    assert PROMOTION_FILE in git_in(bare, "ls-tree", "--name-only", "staging")
    with pytest.raises(NotReady, match="nothing to promote from master to staging"):
        inventory.promote(promotion("p2"))
    # a new version is promoted on top of the environment's history
    inventory.add_entries([entry("app-b", "2.0.0")])
    again = inventory.promote(promotion("p3"))
    assert again.entries == ["app-b"]
    assert inventory.get("app-b", "staging") == entry("app-b", "2.0.0")
    assert git_in(bare, "rev-list", "--count", "staging").strip() == "2"


def test_deletions_are_promoted(inventory: GitInventory) -> None:
    # issue 14 reversed the old rule ("deletions are not promoted"): a removal reaches the target
    inventory.add_entries([entry("app-a"), entry("app-b")])
    inventory.promote(promotion("p1"))
    inventory.git.commit("master", lambda _p: {"app-b": None}, "retire app-b")
    record = inventory.promote(promotion("p2"))
    assert (record.entries, record.deletions) == ([], ["app-b"])
    assert sorted(inventory.entries("staging")) == ["app-a"]
    with pytest.raises(NotReady):
        inventory.promote(promotion("p3"))


def test_partial_promotion_with_include_and_exclude(inventory: GitInventory) -> None:
    inventory.add_entries([entry("app-a"), entry("app-b"), entry("db/schema")])
    record = inventory.promote(promotion("p1", include=["app-*"], exclude=["app-b"]))
    assert record.entries == ["app-a"]
    assert sorted(inventory.entries("staging")) == ["app-a"]
    rest = inventory.promote(promotion("p2", exclude=["db/*"]))
    assert rest.entries == ["app-b"]
    with pytest.raises(NotReady):
        inventory.promote(promotion("p3", include=["nothing-*"]))


def test_a_promotion_for_review_is_merged_later(inventory: GitInventory, bare: Path) -> None:
    inventory.add_entries([entry("app-a")])
    record = inventory.promote(promotion("rel-7"), merge=False)
    assert "promotion/staging/rel-7" in inventory.branches()
    assert inventory.resolve("staging") is None
    assert inventory.promotion("promotion/staging/rel-7") == record
    with pytest.raises(BadInput):
        inventory.promote(promotion("rel-7"), merge=False)  # already open
    head = inventory.merge_promotion("rel-7")
    assert head == git_in(bare, "rev-parse", "staging").strip()
    assert "promotion/staging/rel-7" not in inventory.branches()
    assert inventory.entries("staging") == {"app-a": entry("app-a")}
    with pytest.raises(BadInput, match="unknown promotion rel-7"):
        inventory.merge_promotion("rel-7")


def test_a_merge_reapplies_on_a_target_that_moved(inventory: GitInventory, bare: Path) -> None:
    inventory.add_entries([entry("app-a"), entry("app-b")])
    inventory.promote(promotion("p1", include=["app-a"]))
    inventory.promote(promotion("p2", include=["app-b"]), merge=False)
    inventory.add_entries([entry("app-a", "2.0.0")])
    inventory.promote(promotion("p3", include=["app-a"]))  # staging moves meanwhile
    inventory.merge_promotion("p2")
    assert inventory.entries("staging") == {
        "app-a": entry("app-a", "2.0.0"),
        "app-b": entry("app-b"),
    }
    last = inventory.promotion("staging")
    assert last is not None and last.id == "p2"
    assert git_in(bare, "rev-list", "--merges", "staging") == ""
    assert git_in(bare, "rev-list", "--count", "staging").strip() == "3"


def test_move_label_creates_a_missing_label(inventory: GitInventory, bare: Path) -> None:
    first = inventory.add_entries([entry("app-a")])
    inventory.move_labels(["us-south_prod_latest"], "master")  # a first deployment
    assert inventory.labels().get("us-south_prod_latest") == first
    second = inventory.add_entries([entry("app-a", "2.0.0")])
    inventory.move_labels(["us-south_prod_latest"], second or "")
    assert git_in(bare, "rev-parse", "us-south_prod_latest").strip() == second
    assert inventory.labels() == {"us-south_prod_latest": second}
    assert "eu_prod_latest" not in inventory.labels()
    with pytest.raises(BadInput):
        inventory.move_labels(["bad tag"], "master")
    with pytest.raises(BadInput):
        inventory.move_labels(["prod_latest"], "no-such-ref")
    with pytest.raises(BadInput, match="hidden by the branch"):
        inventory.move_labels(["master"], "master")
    assert inventory.labels() == {"us-south_prod_latest": second}


def test_from_env(monkeypatch: pytest.MonkeyPatch, bare: Path) -> None:
    monkeypatch.delenv("CHANGEFLOW_INVENTORY_URL", raising=False)
    with pytest.raises(BadInput, match="CHANGEFLOW_INVENTORY_URL"):
        GitInventory.from_env()
    monkeypatch.setenv("CHANGEFLOW_INVENTORY_URL", bare.as_uri())
    block = GitInventory.from_env()
    assert block.remote_url == bare.as_uri()
    assert block.branches() == []


def test_sixteen_ci_writers_lose_nothing(bare: Path, tmp_path: Path) -> None:
    writers, builds = 16, 3

    def agent(i: int) -> GitInventory:
        # like CI jobs on shared and separate agents: some share a mirror, most do not
        cache = tmp_path / ("shared" if i % 4 == 0 else f"agent-{i}")
        return GitInventory(remote_url=bare.as_uri(), cache_dir=str(cache))

    def ci(i: int, inventory: GitInventory) -> None:
        for j in range(builds):
            inventory.add_entries(
                [entry(f"team-{i}/app", f"1.0.{j}"), entry(f"team-{i}/lib-{j}")],
                message=f"ci {i} build {j}",
            )

    _, errors = race(writers, agent, ci)
    assert errors == []
    reader = GitInventory(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "reader"))
    entries = reader.entries("master")
    assert len(entries) == writers * (1 + builds)
    for i in range(writers):
        assert entries[f"team-{i}/app"] == entry(f"team-{i}/app", f"1.0.{builds - 1}")
    assert git_in(bare, "rev-list", "--merges", "master") == ""
    messages = git_in(bare, "log", "--format=%s", "master").splitlines()
    assert sorted(messages) == sorted(f"ci {i} build {j}" for i in range(writers)
                                      for j in range(builds))  # fmt: skip
    # every build's own commit is in the linear history, readable with its entries
    assert len(reader.log("master", "team-3/app")) == builds


def test_labels_add_move_delete(inventory: GitInventory, bare: Path) -> None:
    first = inventory.add_entries([entry("app-a")])
    second = inventory.add_entries([entry("app-a", "2.0.0")])
    assert first and second
    assert inventory.add_label("prod_latest", first) == first
    assert inventory.add_label("us-south_prod_latest", "prod_latest") == first
    with pytest.raises(BadInput, match="already exists"):
        inventory.add_label("prod_latest", second)
    assert git_in(bare, "rev-parse", "prod_latest").strip() == first
    assert inventory.move_labels(["prod_latest"], "master") == second
    assert inventory.labels() == {"prod_latest": second, "us-south_prod_latest": first}
    assert inventory.delete_label("us-south_prod_latest") == first
    assert inventory.labels() == {"prod_latest": second}
    for bad in ["bad label", "a..b", "x.lock", "-x", "a~1", ""]:
        with pytest.raises(BadInput):
            inventory.add_label(bad, "master")
    assert inventory.move_labels(["never-made"], "master") == second  # moving one makes it
    assert inventory.delete_label("never-made") == second
    with pytest.raises(BadInput, match="unknown label"):
        inventory.delete_label("never-made")
    with pytest.raises(BadInput, match="unknown inventory"):
        inventory.add_label("run-1", "no-such-ref")
    with pytest.raises(BadInput, match="hidden by the branch"):
        inventory.add_label("master", "master")
    assert inventory.labels() == {"prod_latest": second}


def test_moving_labels_is_a_compare_and_swap_of_all_of_them(
    inventory: GitInventory, bare: Path, tmp_path: Path
) -> None:
    first = inventory.add_entries([entry("app-a")])
    second = inventory.add_entries([entry("app-a", "2.0.0")])
    assert first and second
    inventory.add_label("prod_latest", first)
    other = GitInventory(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "other"))
    seen = inventory.git.ref_value("refs/tags/prod_latest")
    other.move_labels(["prod_latest"], second)  # someone else moves it meanwhile
    with pytest.raises(RefConflict):
        inventory.git.set_ref("refs/tags/prod_latest", first, expected=seen)
    assert git_in(bare, "rev-parse", "prod_latest").strip() == second
    # a first move expects the label to be missing: one made meanwhile is not overwritten
    assert inventory.git.ref_value("refs/tags/dev_latest") is None
    other.move_labels(["dev_latest"], second)
    with pytest.raises(RefConflict):
        inventory.git.set_ref("refs/tags/dev_latest", first, expected=None)
    assert git_in(bare, "rev-parse", "dev_latest").strip() == second
    # labels moved together lose a race together: the one whose lease held does not move
    third = inventory.add_entries([entry("app-a", "3.0.0")])
    assert third
    inventory.move_labels(["r1_prod_latest"], first)
    leases = {"refs/tags/r1_prod_latest": first, "refs/tags/prod_latest": first}
    with pytest.raises(RefConflict):
        inventory.git.set_refs(dict.fromkeys(leases, third), leases)
    other.move_labels(["CHG0000009"], first)
    with pytest.raises(RefConflict):
        inventory.git.set_refs(
            dict.fromkeys([*leases, "refs/tags/CHG0000009"], third),
            {"refs/tags/r1_prod_latest": first, "refs/tags/prod_latest": second},
        )
    assert git_in(bare, "rev-parse", "r1_prod_latest").strip() == first
    assert git_in(bare, "rev-parse", "CHG0000009").strip() == first


def test_validate_names_every_bad_file(inventory: GitInventory) -> None:
    inventory.add_entries([entry("app-a"), entry("team/app-b")])
    check = inventory.validate("master")
    assert (check.checked, check.bad) == (2, [])
    good = entry("team/app-c").model_dump(mode="json")
    inventory.git.commit(
        "master",
        lambda _parent: {
            "broken": b"{not json",
            "list": b"[1, 2]",
            "team/bad-digest": json.dumps(
                {**good, "name": "team/bad-digest", "sha256": "sha256:xyz"}
            ).encode(),
            "team/bad-commit": json.dumps(
                {**good, "name": "team/bad-commit", "commit_sha": "HEAD"}
            ).encode(),
            "team/alias": json.dumps(good).encode(),
            "a" * 201: json.dumps({**good, "name": "a" * 201}).encode(),
            ".hidden/entry": b"not checked: hidden",
            "NOTES.md": b"not checked: markdown",
            "scratch/junk": b"not checked: ignored",
            ".inventoryignore": b"scratch/\n",
        },
        "hand-pushed files",
    )
    check = inventory.validate("master")
    assert check.commit == inventory.resolve("master") and check.checked == 8
    problems = {b.name: b.problem for b in check.bad}
    assert sorted(problems) == sorted(
        ["broken", "list", "team/bad-digest", "team/bad-commit", "team/alias", "a" * 201]
    )
    assert problems["broken"].startswith("not JSON")
    assert problems["list"] == "not a JSON object but list"
    assert problems["team/bad-digest"].startswith("sha256:")
    assert problems["team/bad-commit"].startswith("commit_sha:")
    assert problems["team/alias"] == "names itself 'team/app-c'"
    assert "1 to 200 characters" in problems["a" * 201]
    with pytest.raises(BadInput):
        inventory.validate("no-such-env")


def test_promotable_answers_before_any_write(inventory: GitInventory, bare: Path) -> None:
    inventory.add_entries([entry("app-a"), entry("db/schema")])
    assert inventory.promotable("master", "staging") == ["app-a", "db/schema"]
    assert inventory.promotable("master", "staging", exclude=["db/*"]) == ["app-a"]
    inventory.promote(promotion("p1"))
    before = git_in(bare, "for-each-ref")
    with pytest.raises(NotReady, match="nothing to promote from master to staging"):
        inventory.promotable("master", "staging")
    with pytest.raises(BadInput):
        inventory.promotable("no-such-env", "prod")
    with pytest.raises(BadInput):
        inventory.promotable("master", "master")
    assert git_in(bare, "for-each-ref") == before
