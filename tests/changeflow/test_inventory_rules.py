"""The inventory's rules, without git: entries, clashes, promotion branches and selection."""

from __future__ import annotations

import pytest

from changeflow.delta import select_promotion
from changeflow.errors import BadInput, IntegrityError, NotReady
from changeflow.inventory_rules import (
    check_entries,
    check_promotion_target,
    clash_problem,
    entry_files,
    entry_folders,
    find_promotion,
    is_environment,
    parse_entry,
    parse_promotion,
    promotion_branch,
    promotion_message,
    pull_request_text,
    record_message,
    refuse_ignored,
    types_in,
)
from changeflow.models import InventoryEntry, Promotion

DIGEST = "sha256:" + "b" * 64


def entry(name: str) -> InventoryEntry:
    return InventoryEntry(
        name=name, artifact="s3://b/k", version="1", sha256=DIGEST, type="file",
        repository_url="https://example.com/org/app", commit_sha="a" * 40, build_number="7",
        pipeline_run_id="ci-1", provenance=f"artifact://app@{DIGEST}",
    )  # fmt: skip


def test_clashes_between_entries_files_and_folders() -> None:
    assert entry_folders(["a/b/c", "d"]) == {"a", "a/b"}
    names = ["a/b/c", "d"]
    assert clash_problem(names, {"a": "tree", "a/b": "tree", "d": "blob"}) is None
    assert clash_problem(names, {"a": "blob"}) == "inventory path a is already a file"
    assert clash_problem(names, {"d": "tree"}) == "inventory path d is already a folder"
    # the same answer from a plain list of files, as a store without git trees has them
    paths = [*names, *entry_folders(names)]
    assert types_in(["a/b/c", "d"], paths) == {"a": "tree", "a/b": "tree", "a/b/c": "blob",
                                               "d": "blob"}  # fmt: skip
    assert clash_problem(names, types_in(["a", "x/y"], paths)) == (
        "inventory path a is already a file"
    )
    assert clash_problem(names, types_in(["d/e"], paths)) == "inventory path d is already a folder"


def test_recording_entries() -> None:
    assert entry_files([entry("a"), entry("b/c")]) == {
        "a": entry("a").to_json() + b"\n",
        "b/c": entry("b/c").to_json() + b"\n",
    }
    with pytest.raises(BadInput, match="inventory entry a given twice"):
        entry_files([entry("a"), entry("a")])
    refuse_ignored(["a", "b/c"], ["*.txt"], "master")
    with pytest.raises(BadInput, match=r"entry scratch/x matches \.inventoryignore on master"):
        refuse_ignored(["a", "scratch/x"], ["scratch/"], "master")
    check = check_entries("c" * 40, {"b": b"[]", "a": entry("a").to_json()})
    assert (check.commit, check.checked) == ("c" * 40, 2)
    assert [(b.name, b.problem) for b in check.bad] == [("b", "not a JSON object but list")]


def test_entries_that_are_not_what_their_path_says_are_integrity_errors() -> None:
    data = entry("team/app").to_json()
    assert parse_entry("team/app", data, "c" * 40) == entry("team/app")
    with pytest.raises(IntegrityError, match="names itself 'team/app'"):
        parse_entry("alias", data, "c" * 40)
    with pytest.raises(IntegrityError, match=r"broken at cccccccccccc is not an inventory entry"):
        parse_entry("broken", b"{oops", "c" * 40)
    with pytest.raises(IntegrityError, match=r"\.promotion\.json at cccc"):
        parse_promotion(b"[]", "c" * 40)


def test_promotion_branches_and_targets() -> None:
    assert promotion_branch("prod", "rel-7") == "promotion/prod/rel-7"
    assert [b for b in ["master", "prod", "promotion/prod/1"] if is_environment(b)] == ["prod"]
    check_promotion_target("master", "staging")
    for source, target in [("master", "master"), ("staging", "staging"), ("a", "promotion/x")]:
        with pytest.raises(BadInput, match="cannot promote to"):
            check_promotion_target(source, target)
    branches = ["master", "promotion/prod/1", "promotion/eu/prod/2", "promotion/a/3",
                "promotion/b/3"]  # fmt: skip
    assert find_promotion(branches, "1") == ("promotion/prod/1", "prod")
    assert find_promotion(branches, "2") == ("promotion/eu/prod/2", "eu/prod")
    with pytest.raises(BadInput, match="unknown promotion 9"):
        find_promotion(branches, "9")
    with pytest.raises(BadInput, match="open for several targets"):
        find_promotion(branches, "3")


def test_what_a_promotion_carries() -> None:
    differing = ["app/wheel", "app/sdist", "lib/wheel"]
    assert select_promotion(differing, [], [], source="master", target="qa") == sorted(differing)
    kept = select_promotion(differing, ["app/*"], ["*/sdist"], source="master", target="qa")
    assert kept == ["app/wheel"]
    with pytest.raises(NotReady, match="nothing to promote from master to qa"):
        select_promotion(differing, ["none/*"], [], source="master", target="qa")
    with pytest.raises(NotReady):
        select_promotion([], [], [], source="master", target="qa")


def test_the_texts_every_backend_writes() -> None:
    names = [f"app-{i}" for i in range(7)]
    assert record_message(["a"]) == "inventory: record 1 entry: a"
    assert record_message(names) == (
        "inventory: record 7 entries: app-0, app-1, app-2, app-3, app-4 (+2 more)"
    )
    record = Promotion(
        id="rel-7", source="master", target="prod", assigned_to="rm", description="weekly",
        backout_plan="redeploy", entries=["a", "b"], source_commit="c" * 40,
    )  # fmt: skip
    message = promotion_message(record)
    assert message.startswith("promote rel-7: 2 entries from master to prod\n\nweekly\n")
    assert f"source commit: {'c' * 40}\nentries: a, b\n" in message
    title, body = pull_request_text(record, "prod")
    assert title == "promote rel-7: 2 entries from master to prod"
    assert "- `a`\n- `b`" in body and "changeflow promote --merge rel-7" in body
