"""GitRemote against real bare remotes: plumbing commits, CAS pushes, concurrent writers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from stack_support import git_in, race

from blocks.gitrepo import GitError, GitRemote, RefConflict

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def remote(bare: Path, tmp_path: Path) -> GitRemote:
    return GitRemote(bare.as_uri(), tmp_path / "cache")


def git_in_stdin(repo: Path, stdin: str, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _put(files: Mapping[str, bytes | None]) -> Callable[[str | None], Mapping[str, bytes | None]]:
    return lambda _parent: files


def test_empty_remote_fetches_and_reads_nothing(remote: GitRemote) -> None:
    remote.fetch()
    assert remote.branches() == []
    assert remote.tags() == {}
    assert remote.resolve("master") is None
    assert remote.log("master") == []


def test_commit_and_read_round_trip(remote: GitRemote, bare: Path) -> None:
    files = {"a.json": b"{}\n", "team/app/b.json": b"[1]\n", "team/c": b"\x00\xff binary"}
    head = remote.commit("master", _put(files), "first", author="Jane Doe <jane@example.com>")
    assert head is not None
    assert remote.resolve("master") == head  # the mirror follows its own push
    assert remote.read_files("master") == files
    assert set(remote.list_files(head)) == set(files)
    assert remote.read_files(head, ["team/app/b.json", "missing", "team"]) == {
        "team/app/b.json": b"[1]\n"
    }
    assert git_in(bare, "show", "master:team/app/b.json") == "[1]\n"
    assert git_in(bare, "log", "-1", "--format=%an <%ae>|%cn|%s", "master").strip() == (
        "Jane Doe <jane@example.com>|changeflow|first"
    )
    assert [c.commit for c in remote.log("master")] == [head]


def test_delete_drops_emptied_folders(remote: GitRemote, bare: Path) -> None:
    remote.commit("master", _put({"a/b/c": b"1", "a/d": b"2", "e": b"3"}), "add")
    remote.commit("master", _put({"a/b/c": None}), "delete c")
    assert git_in(bare, "ls-tree", "-r", "-t", "--name-only", "master").split() == ["a", "a/d", "e"]
    remote.commit("master", _put({"a/d": None}), "delete d")
    assert git_in(bare, "ls-tree", "-r", "-t", "--name-only", "master").split() == ["e"]
    assert remote.diff("master~1", "master") == ([], [], ["a/d"])


def test_a_change_that_changes_nothing_makes_no_commit(remote: GitRemote, bare: Path) -> None:
    head = remote.commit("master", _put({"a": b"1"}), "add")
    assert remote.commit("master", _put({"a": b"1"}), "same again") == head
    assert remote.commit("master", _put({"gone": None}), "delete nothing") == head
    assert remote.commit("master", lambda _p: None, "nothing") is None
    assert remote.commit("master", lambda _p: {}, "nothing") is None
    assert remote.commit("other", lambda _p: {"x": None}, "nothing on a new branch") is None
    assert git_in(bare, "rev-list", "--count", "--all").strip() == "1"


def test_change_sees_the_parent(remote: GitRemote) -> None:
    seen: list[str | None] = []

    def change(parent: str | None) -> dict[str, bytes | None]:
        seen.append(parent)
        return {"n": str(len(seen)).encode()}

    first = remote.commit("master", change, "one")
    second = remote.commit("master", change, "two")
    assert second is not None and seen == [None, first]
    assert remote.parents(second) == [first]


def test_diff_names_modified_added_and_deleted(remote: GitRemote) -> None:
    before = remote.commit("master", _put({"m": b"1", "d/x": b"2", "same": b"3"}), "one")
    after = remote.commit("master", _put({"m": b"9", "d/x": None, "n/y": b"4"}), "two")
    assert before and after
    assert remote.diff(before, after) == (["m"], ["n/y"], ["d/x"])
    assert remote.diff(None, after) == ([], ["m", "n/y", "same"], [])
    assert remote.diff(after, after) == ([], [], [])


def test_new_branch_starts_from_a_start_point(remote: GitRemote) -> None:
    base = remote.commit("master", _put({"a": b"1"}), "base")
    assert base is not None
    head = remote.commit("feature", _put({"b": b"2"}), "feature", start_point="master")
    assert head is not None
    assert remote.parents(head) == [base]
    assert remote.branches() == ["feature", "master"]
    assert [c.message for c in remote.log("feature", exclude="master")] == ["feature"]
    # nothing new on top of the start point: the branch is made there, with no empty commit
    assert remote.commit("same", _put({"a": b"1"}), "nothing", start_point="master") == base
    assert remote.resolve("same") == base


def test_a_writer_reapplies_its_change_on_a_moved_head(bare: Path, tmp_path: Path) -> None:
    one = GitRemote(bare.as_uri(), tmp_path / "one")
    two = GitRemote(bare.as_uri(), tmp_path / "two")
    one.commit("master", _put({"base": b"0"}), "base")
    calls: list[str | None] = []

    def change(parent: str | None) -> dict[str, bytes | None]:
        calls.append(parent)
        if len(calls) == 1:  # someone else commits while this change is being built
            two.commit("master", _put({"other": b"1"}), "other")
        return {"mine": b"2"}

    head = one.commit("master", change, "mine")
    assert len(calls) == 2 and calls[0] != calls[1]
    assert set(one.read_files(head or "")) == {"base", "other", "mine"}
    assert git_in(bare, "rev-list", "--count", "master").strip() == "3"


def test_concurrent_writers_keep_every_write_and_a_linear_history(
    bare: Path, tmp_path: Path
) -> None:
    threads, writes = 16, 5

    def mirror(i: int) -> GitRemote:
        # some writers share one mirror, the others each have their own
        return GitRemote(bare.as_uri(), tmp_path / ("shared" if i % 4 == 0 else f"cache-{i}"))

    def write(i: int, remote: GitRemote) -> None:
        for j in range(writes):
            remote.commit("master", _put({f"w{i:02d}/e{j}": f"{i}-{j}".encode()}), f"{i}/{j}")

    _, errors = race(threads, mirror, write)
    assert errors == []
    files = git_in(bare, "ls-tree", "-r", "--name-only", "master").split()
    assert len(files) == threads * writes
    assert git_in(bare, "rev-list", "--merges", "master") == ""
    assert git_in(bare, "rev-list", "--count", "master").strip() == str(threads * writes)


def test_processes_can_create_one_mirror_at_once(bare: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = (
        "import sys; from blocks.gitrepo import GitRemote; "
        "GitRemote(sys.argv[1], sys.argv[2]).fetch()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, bare.as_uri(), str(cache)], cwd=ROOT)
        for _ in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert [p.name for p in cache.iterdir() if p.suffix == ".git"] == [
        GitRemote(bare.as_uri(), cache).path.name
    ]


def test_set_ref_is_a_compare_and_swap(remote: GitRemote, bare: Path) -> None:
    first = remote.commit("master", _put({"a": b"1"}), "one")
    second = remote.commit("master", _put({"a": b"2"}), "two")
    assert first and second
    remote.set_ref("refs/tags/prod_latest", first, expected=None)
    assert remote.tags() == {"prod_latest": first}
    remote.set_ref("refs/tags/prod_latest", second, expected=first)
    assert git_in(bare, "rev-parse", "prod_latest").strip() == second
    with pytest.raises(RefConflict):
        remote.set_ref("refs/tags/prod_latest", first, expected=first)  # stale
    with pytest.raises(RefConflict):
        remote.set_ref("refs/tags/prod_latest", first, expected=None)  # exists already
    remote.set_ref("refs/tags/prod_latest", first)  # CAS on the freshly fetched value
    assert git_in(bare, "rev-parse", "prod_latest").strip() == first
    with pytest.raises(RefConflict):
        remote.delete_ref("refs/tags/prod_latest", expected=second)
    remote.delete_ref("refs/tags/prod_latest")
    remote.delete_ref("refs/tags/prod_latest")  # absent: nothing to do
    remote.fetch()
    assert remote.tags() == {}
    with pytest.raises(ValueError):
        remote.set_ref("prod_latest", first)


def test_bad_paths_are_refused(remote: GitRemote) -> None:
    for path in ["../x", "a//b", "/abs", ".git/config", "a/./b", ""]:
        with pytest.raises(ValueError):
            remote.commit("master", _put({path: b"x"}), "bad")


def test_a_declined_push_fails_at_once(bare: Path, remote: GitRemote) -> None:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen for audit' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(GitError, match="frozen for audit"):
        remote.commit("master", _put({"a": b"1"}), "refused")


def test_errors_never_show_url_credentials(tmp_path: Path) -> None:
    remote = GitRemote("http://user:s3cr3t-token@127.0.0.1:9/inventory.git", tmp_path / "c")
    with pytest.raises(GitError) as info:
        remote.fetch()
    assert "s3cr3t-token" not in str(info.value)
    assert "s3cr3t-token" not in repr(remote)


def test_ref_value_is_what_a_compare_and_swap_expects(remote: GitRemote, bare: Path) -> None:
    head = remote.commit("master", _put({"a": b"1"}), "one")
    assert head is not None
    git_in(
        bare, "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "-m", "x", "v_latest", head
    )
    remote.fetch()
    tag_object = git_in(bare, "rev-parse", "refs/tags/v_latest").strip()
    assert tag_object != head  # an annotated tag: the ref holds the tag object
    assert remote.ref_value("refs/tags/v_latest") == tag_object
    assert remote.resolve("v_latest") == head
    assert remote.ref_value("refs/heads/master") == head
    assert remote.ref_value("refs/tags/absent") is None
    remote.delete_ref("refs/tags/v_latest", expected=tag_object)
    with pytest.raises(ValueError):
        remote.ref_value("master")


def test_objects_written_without_git_are_what_git_would_write(
    remote: GitRemote, bare: Path
) -> None:
    # many files: one pack written in Python; a few: loose objects. git checks both.
    files = {f"d{i % 7}/ü{i % 3}/f-{i}": b"x" * i for i in range(60)}
    files["big"] = bytes(range(256)) * 400
    head = remote.commit("master", _put(files), "many")
    assert list((remote.path / "objects" / "pack").glob("pack-*.idx"))
    remote.commit("master", _put({"d0/ü0/f-0": b"changed", "gone": None}), "few")
    for repo in (remote.path, bare):
        git_in(repo, "fsck", "--strict", "--full", "--no-dangling")
    assert remote.read_files("master") == {**files, "d0/ü0/f-0": b"changed"}
    # the ids are git's own: git hashes the same tree listing to the same id
    listing = git_in(bare, "ls-tree", f"{head}:d1")
    assert (
        git_in_stdin(bare, listing, "mktree").strip()
        == git_in(bare, "rev-parse", f"{head}:d1").strip()
    )


def test_a_commit_releases_refs_in_the_same_push(remote: GitRemote, bare: Path) -> None:
    blob = remote._hash_blobs([b"pending\n"])[0]
    assert remote.push_refs({"refs/x/mine": blob, "refs/x/other": blob}, {})
    head = remote.commit("master", _put({"a": b"1"}), "one", release={"refs/x/mine": blob})
    assert git_in(bare, "rev-parse", "master").strip() == head
    # released with the commit; one that no longer holds the value given is left alone
    assert git_in(bare, "for-each-ref", "--format=%(refname)", "refs/x/").split() == [
        "refs/x/other"
    ]
    remote.commit("master", _put({"b": b"2"}), "two", release={"refs/x/other": "0" * 40})
    assert git_in(bare, "for-each-ref", "--format=%(refname)", "refs/x/").split() == [
        "refs/x/other"
    ]
    # an atomic push moves all or nothing
    assert not remote.push_refs(
        {"refs/x/other": "", "refs/x/new": blob}, {"refs/x/other": "0" * 40}
    )
    assert "refs/x/new" not in git_in(bare, "for-each-ref", "refs/x/")


def test_writers_taking_numbers_at_once_get_distinct_ones_and_keep_their_tickets(
    bare: Path, tmp_path: Path
) -> None:
    counter = "refs/changeflow/last-change-id"

    def mirror(i: int) -> GitRemote:
        return GitRemote(bare.as_uri(), tmp_path / ("shared" if i % 3 == 0 else f"c{i}"))

    tickets, errors = race(8, mirror, lambda _i, remote: remote.allocate(counter, lambda _l: 41))
    assert errors == []
    assert sorted(t.number for t in tickets) == list(range(42, 50))
    remote = mirror(1)
    assert remote.counter(counter) == 49
    ages = remote.ticket_ages(counter, remote.listing())
    assert set(ages) == {t.ref for t in tickets} and all(0 <= a < 60 for a in ages.values())
    for ticket in tickets:  # each holds its number until its writer deletes it
        assert git_in(bare, "cat-file", "blob", ticket.value).strip() == str(ticket.number)
        assert remote.push_refs({ticket.ref: ""}, {ticket.ref: ticket.value})
    assert remote.allocate(counter, lambda _l: 0).number == 50
