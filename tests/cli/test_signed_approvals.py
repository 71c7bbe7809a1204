"""Issue 13 on a real change repo: approvals signed with SSH keys, refused attempts write nothing.

Each person has their own ed25519 key made by `ssh-keygen`; `changeflow cr approve --key`
signs with it and the CR's recorded rule (approvers, quorum of 2) decides. Every refused
attempt is exit 2, one line naming the rule, and no commit on the bare remote.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from stack_support import git_in, run_changeflow

from blocks.change_management import GitChangeManagement
from blocks.ssh_signatures import sign, verify
from changeflow.approvals import cr_digest, statement_of
from changeflow.approvers import Approval, ApprovalRule, Approver
from changeflow.change import transition
from changeflow.models import ChangeRequest, ChangeState, ChangeType

PEOPLE = ("alice", "bob", "carol", "mallory")


@dataclass
class Board:
    remote: Path
    home: Path
    block: GitChangeManagement
    keys: dict[str, Path]
    rule: ApprovalRule

    def file(self, region: str, *, emergency: bool = False) -> ChangeRequest:
        def build(change_id: str) -> ChangeRequest:
            cr = ChangeRequest(
                id=change_id,
                environment="prod",
                region=region,
                deployment_run_id="deploy-1",
                assigned_to="Carol <carol@example.com>",
                approval_rule=self.rule,
                type=ChangeType.emergency if emergency else ChangeType.standard,
            )
            return transition(cr, ChangeState.assess, by="changeflow", why="filed")

        cr = transition(self.block.create(build), ChangeState.authorize, by="t", why="assessed")
        if emergency:  # deployed ahead of its approvals, waiting in review
            for state in (ChangeState.scheduled, ChangeState.implement, ChangeState.review):
                cr = transition(cr, state, by="changeflow", why="emergency")
        return self.block.update(cr, f"now {cr.state.value}")

    def commits(self) -> int:
        return int(git_in(self.remote, "rev-list", "--count", "--all"))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGEFLOW_")}
        env.pop("PREFECT_API_URL", None)
        env.update(CHANGEFLOW_CHANGE_REPO_URL=self.remote.as_uri(), CHANGEFLOW_HOME=str(self.home))
        return run_changeflow("cr", *args, env=env)

    def approve(self, cr: ChangeRequest, who: str, key: str | None = None) -> list[str]:
        return ["approve", cr.id, "--by", f"{who}@example.com", "--key", str(self.keys[key or who])]

    def refused(self, args: list[str], rule: str) -> str:
        before = self.commits()
        done = self.cli(*args)
        assert done.returncode == 2, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and done.stdout == "", done.stderr
        assert lines[0].removeprefix("changeflow: ").startswith(rule), lines[0]
        assert self.commits() == before  # nothing written
        return lines[0]


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Board:
    root = tmp_path_factory.mktemp("board")
    remote = root / "changes.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    keys = {}
    for who in PEOPLE:
        keys[who] = root / f"{who}_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(keys[who])],
            check=True,
        )
    approvers = [
        Approver(
            identity=f"{who}@example.com", public_key=keys[who].with_suffix(".pub").read_text()
        )
        for who in ("alice", "bob", "carol")
    ]
    block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(root / "setup"))
    rule = ApprovalRule(approvers=approvers, approvals_required=2)
    return Board(remote, root / "home", block, keys, rule)


def test_ssh_signatures_verify_only_for_the_signers_own_key(board: Board) -> None:
    alice = board.rule.approvers[0]
    signature = sign(board.keys["alice"], "the statement")
    assert verify(alice, "the statement", signature)
    assert not verify(alice, "another statement", signature)
    assert not verify(alice, "the statement", sign(board.keys["mallory"], "the statement"))
    # a signature in another namespace (a git commit's) does not pass for an approval
    data = board.keys["alice"].parent / "git-data"
    data.write_text("the statement")
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(board.keys["alice"]), str(data)],
        check=True,
        capture_output=True,
    )
    git_signature = data.with_name("git-data.sig").read_text()
    assert not verify(alice, "the statement", git_signature)


def test_self_approval_is_refused(board: Board) -> None:
    cr = board.file("self")
    line = board.refused(board.approve(cr, "carol"), "separation of duties: ")
    assert "assignee" in line
    assert board.block.get(cr.id).approvals == []


def test_an_unlisted_key_or_a_typed_name_is_refused(board: Board) -> None:
    cr = board.file("keys")
    board.refused(board.approve(cr, "mallory"), "not an approver: mallory@example.com")
    board.refused(board.approve(cr, "alice", key="mallory"), "bad signature: ")
    board.refused(["approve", cr.id, "--by", "alice@example.com"], "signature required: ")
    assert board.block.get(cr.id).state is ChangeState.authorize


def test_a_signature_over_another_cr_or_a_stale_digest_does_not_verify(board: Board) -> None:
    cr, other = board.file("replay"), board.file("replay-other")
    alice = board.rule.approvers[0]
    approval = Approval(by=alice.identity, decision="approved", cr_digest=cr_digest(other))
    signature = sign(board.keys["alice"], statement_of(other.id, approval))
    # replayed onto `cr`: the statement names the other CR and its content
    replayed = approval.model_copy(update={"signature": signature})
    assert not verify(alice, statement_of(cr.id, replayed), signature)
    from changeflow.approvals import check_approval
    from changeflow.errors import BadInput

    with pytest.raises(BadInput, match=r"^stale approval: "):
        check_approval(cr, replayed, board.rule, verify)
    fresh = replayed.model_copy(update={"cr_digest": cr_digest(cr)})
    with pytest.raises(BadInput, match=r"^bad signature: "):
        check_approval(cr, fresh, board.rule, verify)


def test_a_quorum_of_two_takes_two_people(board: Board) -> None:
    cr = board.file("quorum")
    done = board.cli(*board.approve(cr, "alice"))
    assert done.returncode == 0, done.stderr
    assert "(authorize); approved by alice@example.com (1 of 2; 1 more needed)" in done.stdout
    board.refused(board.approve(cr, "alice"), "quorum: alice@example.com has already approved")
    done = board.cli(*board.approve(cr, "bob"))
    assert done.returncode == 0, done.stderr
    stored = board.block.get(cr.id)
    assert stored.state is ChangeState.scheduled
    assert [a.by for a in stored.approvals] == ["alice@example.com", "bob@example.com"]
    assert all(a.signature and a.cr_digest == cr_digest(stored) for a in stored.approvals)
    rendered = board.cli("get", cr.id).stdout
    assert "alice@example.com" in rendered and "bob@example.com" in rendered


def test_an_emergency_does_not_close_successful_without_review(board: Board) -> None:
    cr = board.file("emergency", emergency=True)
    args = ["close", cr.id, "--category", "successful", "--by", "ops"]
    board.refused(args, "emergency review: ")
    board.refused([*args[:3], "successful_issues", *args[4:]], "emergency review: ")
    for who in ("alice", "bob"):
        assert board.cli(*board.approve(cr, who)).returncode == 0
    done = board.cli(*args)
    assert done.returncode == 0, done.stderr
    assert board.block.get(cr.id).state is ChangeState.closed


def test_a_rejected_cr_can_be_reopened_for_a_new_round(board: Board) -> None:
    cr = board.file("reopen")
    reject = ["reject", cr.id, "--by", "bob@example.com", "--key", str(board.keys["bob"])]
    assert board.cli(*reject).returncode == 0
    assert board.block.get(cr.id).state is ChangeState.cancelled
    done = board.cli("reopen", cr.id, "--by", "alice@example.com")
    assert done.returncode == 0, done.stderr
    assert board.block.get(cr.id).state is ChangeState.authorize
    board.refused(["reopen", cr.id, "--by", "alice@example.com"], f"{cr.id} is authorize")
