"""The CR's change log (issue 14): the application's commits between what is deployed and what
is coming, with their messages and pull requests, capped, and escaped for people."""

from __future__ import annotations

import re

import pytest

from changeflow.change_content import ChangeLogCommit, ChangeLogEntry, PullRequestLink
from changeflow.change_log import (
    MAX_COMMITS,
    change_log,
    not_readable_here,
    planned_change_log,
    pull_request_link,
    pull_request_number,
    web_url,
)
from changeflow.delta import Delta
from changeflow.models import InventoryEntry
from changeflow.render import change_log_lines

OLD, NEW = "a" * 40, "b" * 40


def entry(name: str, version: str = "1", commit_sha: str = "c" * 40) -> InventoryEntry:
    uri = f"artifact://{name}@sha256:{'d' * 64}"
    return InventoryEntry(
        name=name, artifact=uri, version=version, type="file", sha256="sha256:" + "d" * 64,
        repository_url="https://github.com/acme/app", commit_sha=commit_sha, build_number=version,
        pipeline_run_id="ci-1", provenance=uri,
    )  # fmt: skip


def _planned(url: str = "https://github.com/acme/app.git") -> ChangeLogEntry:
    return ChangeLogEntry(entry="app", repository_url=url, from_commit=OLD, to_commit=NEW)


@pytest.mark.parametrize(
    ("message", "number"),
    [
        ("Merge pull request #12 from acme/feature\n\nAdd things", 12),
        ("Add things (#345)", 345),
        ("Merge branch 'feature' into 'main'\n\nAdd things\n\nSee merge request acme/app!7", 7),
        ("Fix #12 in the parser", None),  # an issue, not a pull request
        ("(#1](javascript:alert(1))", None),
        ("Add things (#12) and more", None),
    ],
)
def test_a_pull_request_is_read_from_the_message(message: str, number: int | None) -> None:
    assert pull_request_number(message) == number


def test_links_are_built_from_the_repository_url_in_the_forge_s_form() -> None:
    assert web_url("https://github.com/acme/app.git") == "https://github.com/acme/app"
    assert web_url("git@github.com:acme/app.git") == "https://github.com/acme/app"
    assert web_url("ssh://git@gitlab.example:2222/group/sub/app") == (
        "https://gitlab.example/group/sub/app"
    )
    for no_page in ["file:///srv/app.git", "/srv/app", "ext::sh -c touch% /tmp/x",
                    "https://host/a(b)", "https://host/a b", "javascript:alert(1)"]:  # fmt: skip
        assert web_url(no_page) is None, no_page
    github = pull_request_link("https://github.com/acme/app.git", 3, "github")
    assert github == PullRequestLink(number=3, url="https://github.com/acme/app/pull/3")
    gitlab = pull_request_link("git@gitlab.example:g/app.git", 3, "gitlab")
    assert gitlab.url == "https://gitlab.example/g/app/-/merge_requests/3"
    assert pull_request_link("https://github.com/acme/app", 3, None) == PullRequestLink(number=3)


def test_the_ranges_are_each_changed_commit_from_the_deployed_one() -> None:
    moved, same, new = entry("moved", commit_sha=NEW), entry("same"), entry("new", commit_sha=NEW)
    delta = Delta(changed=["moved", "same"], added=["new"],
                  entries={"moved": moved, "same": same, "new": new})  # fmt: skip
    before = {"moved": entry("moved", commit_sha=OLD), "same": entry("same", "0.9")}
    planned = planned_change_log(delta, before)
    assert [(c.entry, c.from_commit, c.to_commit) for c in planned] == [
        ("moved", OLD, NEW),
        ("new", None, NEW),
    ]  # "same" was rebuilt from the same commit: nothing to log


def test_commits_are_capped_and_linked() -> None:
    commits = [(f"{i:040x}", f"change {i} (#{i + 1})\n\nbody") for i in range(MAX_COMMITS + 3)]
    [logged] = change_log([_planned()], {"app": (commits, 80)}, "github")
    assert logged.commits is not None and len(logged.commits) == MAX_COMMITS
    assert logged.more == 80 - MAX_COMMITS
    assert logged.commits[0] == ChangeLogCommit(
        sha=f"{0:040x}", message="change 0 (#1)",
        pull_request=PullRequestLink(number=1, url="https://github.com/acme/app/pull/1"),
    )  # fmt: skip
    lines = change_log_lines([logged])
    assert lines[1] == (f"  - `{0:012x}` change 0 (#1) ([#1](https://github.com/acme/app/pull/1))")
    assert lines[-1] == f"  - and {80 - MAX_COMMITS} more commits"
    [empty] = change_log([_planned()], {"app": ([], 0)}, None)
    assert change_log_lines([empty])[1:] == ["  - (no commits between them)"]


def test_a_repository_that_cannot_be_read_is_said_with_its_reason() -> None:
    reason = "cannot clone https://tok:secret@git.example/app: Could not resolve host"
    [failed] = change_log([_planned()], {"app": reason}, "github")
    assert failed.commits is None and "secret" not in (failed.error or "")
    [line] = change_log_lines([failed])[1:]
    assert line.startswith("  - the change log could not be read: cannot clone https://\\*\\*\\*@")
    [unread] = change_log([_planned()], {}, None)
    assert unread.error == "not read"


def test_a_crafted_message_renders_as_text() -> None:
    crafted = [
        (f"{1:040x}", "(#1](javascript:alert(1)) <img src=x onerror=alert(1)>"),
        (f"{2:040x}", "# not a heading\n- [x](https://evil)"),
        (f"{3:040x}", "`code` **bold** | cell |"),
    ]
    [logged] = change_log(
        [_planned("https://github.com/acme/app")], {"app": (crafted, 3)}, "github"
    )
    text = "\n".join(change_log_lines([logged]))
    # no bracket, angle bracket or backtick of theirs is left unescaped: no link, tag or code
    theirs = re.sub(r"`(app|[0-9a-f]{12})`", "", text)  # without our own code spans
    assert re.search(r"(?<!\\)[\[\]<>`*|]", theirs) is None
    assert "(#1\\](javascript:alert(1))" in text
    assert "\\<img src=x onerror=alert(1)\\>" in text
    assert "# not a heading" in text and "[x](https" not in text  # the first line only
    assert "\\`code\\` \\*\\*bold\\*\\* \\| cell \\|" in text
    assert all(c.pull_request is None for c in logged.commits or [])


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://GitHub.com/acme/app", None),
        ("https://user:token@github.com/acme/app.git", None),
        ("ssh://git@git.example:2222/acme/app", None),
        ("git@github.com:acme/app.git", None),
        ("file:///srv/secret.git", "a repository on the worker"),
        ("/srv/secret.git", "a repository on the worker"),
        ("https://github.com.evil.example/acme/app", "its host github.com.evil.example"),
        ("https://github.com@evil.example/acme/app", "its host evil.example"),
        ("https://evil.example#@github.com/acme/app", "its host evil.example"),
        ("http://169.254.169.254/latest", "its host 169.254.169.254"),
    ],
)
def test_an_environment_s_change_log_hosts_name_what_it_reads(url: str, host: str | None) -> None:
    hosts = ["github.com", "git.example"]
    said = not_readable_here(url, hosts)
    assert said == (None if host is None else f"not read: {host} is not in the environment's "
                    "change_log_hosts")  # fmt: skip
    assert not_readable_here(url, None) is None  # without a list: every repository
