"""Reading an application's commits for a CR's change log (issue 14), on real git remotes."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from blocks.app_history import read_commit_logs


def _git(where: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(["git", "-C", str(where), *args], check=True, capture_output=True,
                          text=True, env=env)  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def app(tmp_path: Path) -> tuple[str, list[str]]:
    """A bare app remote (file://) with five commits on main, oldest first, and one more
    reachable from a tag only."""
    work, bare = tmp_path / "work", tmp_path / "app.git"
    _git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    shas = []
    for i, message in enumerate(["start", "Add login (#4)", "Merge pull request #5 from x/y",
                                 "fix typo", "See\n\nSee merge request acme/app!6"]):  # fmt: skip
        (work / "f.txt").write_text(str(i))
        _git(work, "add", "f.txt")
        _git(work, "commit", "--quiet", "-m", message)
        shas.append(_git(work, "rev-parse", "HEAD"))
    _git(work, "checkout", "--quiet", "-b", "side")
    _git(work, "commit", "--quiet", "--allow-empty", "-m", "tagged only")
    _git(work, "tag", "v9")
    shas.append(_git(work, "rev-parse", "HEAD"))
    _git(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))
    _git(bare, "branch", "-D", "side")
    return bare.as_uri(), shas


def test_each_range_is_read_newest_first_capped_and_counted(app: tuple[str, list[str]]) -> None:
    url, shas = app
    found = read_commit_logs(
        [("moved", url, shas[1], shas[4]), ("new", url, None, shas[1]),
         ("tagged", url, shas[4], shas[5]), ("missing", url, shas[0], "f" * 40)],
        limit=2,
    )  # fmt: skip
    moved = found["moved"]
    assert not isinstance(moved, str)
    assert [sha for sha, _ in moved[0]] == [shas[4], shas[3]] and moved[1] == 3
    assert moved[0][0][1] == "See\n\nSee merge request acme/app!6"
    assert found["new"] == ([(shas[1], "Add login (#4)"), (shas[0], "start")], 2)
    tagged = found["tagged"]  # a commit no branch holds is fetched by its sha
    assert not isinstance(tagged, str) and [s for s, _ in tagged[0]] == [shas[5]]
    assert found["missing"] == f"commit {'f' * 40} is not in {url}"


def test_a_repository_that_cannot_be_read_is_an_answer_not_a_failure(
    app: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, shas = app
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = f"http://user:s3cret@127.0.0.1:{port}/app.git"
    found = read_commit_logs([("down", down, None, shas[0]), ("up", url, None, shas[0])], 5)
    assert isinstance(found["down"], str) and "cannot clone http://***@127.0.0.1" in found["down"]
    assert "s3cret" not in found["down"]
    assert found["up"] == ([(shas[0], "start")], 1)  # another repository is still read


@pytest.mark.parametrize(
    "url",
    ["ext::sh -c touch% {marker}", "ext::sh -c 'touch {marker}'", "--upload-pack=touch {marker}",
     "fd::3"],
)  # fmt: skip
def test_a_url_that_would_run_a_command_is_never_fetched(url: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    found = read_commit_logs([("app", url.format(marker=marker), None, "a" * 40)], 5)
    assert isinstance(found["app"], str) and found["app"].startswith("not read: ")
    assert not marker.exists()


def test_an_environment_reads_only_the_hosts_it_lists(app: tuple[str, list[str]]) -> None:
    """Whoever records inventory entries names the repository a deploy clones: with
    `change_log_hosts` set, a path on the worker (or another host) is never read."""
    from changeflow.delta import Delta
    from changeflow.models import InventoryEntry
    from tasks.change_log import read_change_log

    url, shas = app
    digest = "d" * 64
    entry = InventoryEntry(
        name="app", artifact=f"artifact://app@sha256:{digest}", version="2", type="file",
        sha256=f"sha256:{digest}", repository_url=url, commit_sha=shas[4], build_number="2",
        pipeline_run_id="ci-2", provenance=f"artifact://app@sha256:{digest}",
    )  # fmt: skip
    delta = Delta(added=["app"], entries={"app": entry})
    previous = {"app": entry.model_copy(update={"commit_sha": shas[1]})}
    [read] = read_change_log.fn(delta, previous, None)  # no list: any repository
    assert read.commits and read.error is None
    [refused] = read_change_log.fn(delta, previous, None, ["git.example"])
    assert refused.commits is None
    assert refused.error == (
        "not read: a repository on the worker is not in the environment's change_log_hosts"
    )
