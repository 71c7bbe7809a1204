"""`changeflow cr` on bad input: exit 2, one line on stderr, nothing written to the change repo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from stack_support import git_in, run_changeflow

from blocks.change_management import GitChangeManagement
from changeflow.change import close, record_decision, transition
from changeflow.models import Approval, ChangeRequest, ChangeState, CloseCategory


class Repo:
    """A fresh change remote holding two CRs waiting for approval, a closed and a cancelled one.

    `waiting` is only ever given bad input; `waiting_too` is the one a good decision moves.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.remote = tmp_path / "changes.git"
        subprocess.run(["git", "init", "--quiet", "--bare", str(self.remote)], check=True)
        self.home = tmp_path / "home"
        self.block = GitChangeManagement(
            remote_url=self.remote.as_uri(), cache_dir=str(tmp_path / "setup-cache")
        )
        self.waiting = self._file("us-south", ChangeState.authorize)
        self.waiting_too = self._file("us-east", ChangeState.authorize)
        self.closed = self._file("eu-de", ChangeState.closed)
        self.cancelled = self._file("ap-south", ChangeState.cancelled)

    def _file(self, region: str, state: ChangeState) -> ChangeRequest:
        def build(change_id: str) -> ChangeRequest:
            cr = ChangeRequest(
                id=change_id, environment="prod", region=region, deployment_run_id="deploy-1"
            )
            return transition(cr, ChangeState.assess, by="changeflow", why="filed")

        cr = transition(self.block.create(build), ChangeState.authorize, by="t", why="assessed")
        if state is ChangeState.closed:
            cr = record_decision(cr, Approval(by="alice", decision="approved"))
            cr = transition(cr, ChangeState.implement, by="t", why="deploying")
            cr = close(cr, CloseCategory.successful, by="t")
        elif state is ChangeState.cancelled:
            cr = record_decision(cr, Approval(by="bob", decision="rejected"))
        return self.block.update(cr, f"now {state.value}")

    def commits(self) -> int:
        return int(git_in(self.remote, "rev-list", "--count", "--all"))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGEFLOW_")}
        env.pop("PREFECT_API_URL", None)
        env.update(CHANGEFLOW_CHANGE_REPO_URL=self.remote.as_uri(), CHANGEFLOW_HOME=str(self.home))
        return run_changeflow("cr", *args, env=env)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    # One remote for the module: every bad-input test checks that it wrote nothing, and each
    # CLI run costs seconds (it imports Prefect).
    return Repo(tmp_path_factory.mktemp("cr-cli"))


def assert_bad_input(repo: Repo, args: list[str], *needles: str) -> None:
    before = repo.commits()
    done = repo.cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert repo.commits() == before


def test_unknown_change_request(repo: Repo) -> None:
    assert_bad_input(
        repo, ["approve", "CHG0000099", "--by", "al"], "unknown change request CHG0000099"
    )
    assert_bad_input(
        repo, ["reject", "not-an-id", "--by", "al"], "unknown change request not-an-id"
    )


def test_closed_or_cancelled_change_request(repo: Repo) -> None:
    assert_bad_input(
        repo, ["approve", repo.closed.id, "--by", "al"], repo.closed.id, "is closed", "not waiting"
    )
    assert_bad_input(repo, ["reject", repo.cancelled.id, "--by", "al"], "is cancelled")


@pytest.mark.parametrize("by", ["", "   ", "alice\nbob"])
def test_empty_or_multiline_by(repo: Repo, by: str) -> None:
    assert_bad_input(repo, ["approve", repo.waiting.id, "--by", by], "--by")
    assert_bad_input(
        repo, ["close", repo.waiting.id, "--category", "successful", "--by", by], "--by"
    )


def test_unknown_close_category(repo: Repo) -> None:
    assert_bad_input(repo, ["close", repo.closed.id, "--category", "great"], "great")


def test_close_what_cannot_be_closed(repo: Repo) -> None:
    assert_bad_input(repo, ["close", repo.closed.id, "--category", "successful"], "is closed")
    assert_bad_input(repo, ["close", repo.waiting.id, "--category", "successful"], "is authorize")


def test_a_good_decision_writes_one_commit_and_a_second_is_refused(repo: Repo) -> None:
    history = len(repo.block.history(repo.waiting_too.id))
    done = repo.cli(
        "approve", repo.waiting_too.id, "--by", "carol", "--comment", "evidence reviewed"
    )
    assert done.returncode == 0, done.stderr
    assert f"{repo.waiting_too.id} approved by carol (scheduled)" in done.stdout
    # one commit in the CR's own history (the browsable `main` copies it: not a second change)
    assert len(repo.block.history(repo.waiting_too.id)) == history + 1
    before = repo.commits()
    stored = repo.block.get(repo.waiting_too.id)
    assert stored.state is ChangeState.scheduled and stored.decision is not None
    assert (stored.decision.by, stored.decision.comment) == ("carol", "evidence reviewed")
    # decided once: the second decision is bad input and writes nothing
    assert_bad_input(repo, ["reject", repo.waiting_too.id, "--by", "dave"], "is scheduled")
    assert repo.commits() == before
    # the other CR waiting was not touched
    assert repo.block.get(repo.waiting.id) == repo.waiting
