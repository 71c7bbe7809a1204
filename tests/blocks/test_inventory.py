"""GitInventory against a real bare remote: entries, deltas, promotions and tags."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks.inventory import PROMOTION_FILE, GitInventory, is_entry_path
from changeflow.errors import BadInput, IntegrityError, NotReady
from changeflow.models import InventoryEntry, Promotion


@pytest.fixture(autouse=True)
def _prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
        yield


def _git(remote: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(remote), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    return path


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
    assert head == _git(bare, "rev-parse", "master").strip()
    assert _git(bare, "log", "-1", "--format=%s", "master").strip() == "ci build 1"
    assert inventory.get("app-a", "master") == entry("app-a")
    assert inventory.get("team/app-b", head or "") == entry("team/app-b")
    assert inventory.get("nope", "master") is None
    assert inventory.entries("master") == {
        "app-a": entry("app-a"),
        "team/app-b": entry("team/app-b"),
    }
    assert _git(bare, "show", "master:app-a").encode() == entry("app-a").to_json() + b"\n"
    # the same content again makes no commit
    assert inventory.add_entries([entry("app-a")]) == head
    assert _git(bare, "rev-list", "--count", "master").strip() == "1"
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
    inventory.move_tag("dev_latest", "master")
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
    assert _git(bare, "rev-list", "--merges", "staging") == ""
    assert PROMOTION_FILE in _git(bare, "ls-tree", "--name-only", "staging")
    with pytest.raises(NotReady, match="nothing to promote from master to staging"):
        inventory.promote(promotion("p2"))
    # a new version is promoted on top of the environment's history
    inventory.add_entries([entry("app-b", "2.0.0")])
    again = inventory.promote(promotion("p3"))
    assert again.entries == ["app-b"]
    assert inventory.get("app-b", "staging") == entry("app-b", "2.0.0")
    assert _git(bare, "rev-list", "--count", "staging").strip() == "2"


def test_deletions_are_not_promoted(inventory: GitInventory) -> None:
    inventory.add_entries([entry("app-a"), entry("app-b")])
    inventory.promote(promotion("p1"))
    inventory.git.commit("master", lambda _p: {"app-b": None}, "retire app-b")
    with pytest.raises(NotReady):
        inventory.promote(promotion("p2"))
    assert sorted(inventory.entries("staging")) == ["app-a", "app-b"]


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
    assert head == _git(bare, "rev-parse", "staging").strip()
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
    assert _git(bare, "rev-list", "--merges", "staging") == ""
    assert _git(bare, "rev-list", "--count", "staging").strip() == "3"


def test_move_tag(inventory: GitInventory, bare: Path) -> None:
    first = inventory.add_entries([entry("app-a")])
    inventory.move_tag("us-south_prod_latest", "master")
    assert inventory.tag("us-south_prod_latest") == first
    second = inventory.add_entries([entry("app-a", "2.0.0")])
    inventory.move_tag("us-south_prod_latest", second or "")
    assert _git(bare, "rev-parse", "us-south_prod_latest").strip() == second
    assert inventory.tags() == {"us-south_prod_latest": second}
    assert inventory.tag("eu_prod_latest") is None
    with pytest.raises(BadInput):
        inventory.move_tag("bad tag", "master")
    with pytest.raises(BadInput):
        inventory.move_tag("prod_latest", "no-such-ref")


def test_from_env(monkeypatch: pytest.MonkeyPatch, bare: Path) -> None:
    monkeypatch.delenv("CHANGEFLOW_INVENTORY_URL", raising=False)
    with pytest.raises(BadInput, match="CHANGEFLOW_INVENTORY_URL"):
        GitInventory.from_env()
    monkeypatch.setenv("CHANGEFLOW_INVENTORY_URL", bare.as_uri())
    block = GitInventory.from_env()
    assert block.remote_url == bare.as_uri()
    assert block.branches() == []
