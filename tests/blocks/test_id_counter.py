"""Numbering tickets (`blocks.gitrepo.counter`): a burst of writers leaves numbering to the one
with the oldest ticket, and a ticket whose writer died holds the others back only a moment."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from stack_support import git_in

from blocks.gitrepo import GitRemote
from blocks.gitrepo.counter import Ticket

COUNTER = "refs/changeflow/last-change-id"


def _pending_ticket(bare: Path, age_s: float) -> str:
    """Push a pending ticket by hand, as a writer that took it `age_s` seconds ago would have."""
    blob = subprocess.run(
        ["git", "--git-dir", str(bare), "hash-object", "-w", "--stdin"],
        input=b"pending\n", capture_output=True, check=True,
    ).stdout.decode().strip()  # fmt: skip
    name = f"{COUNTER}.tickets/{time.time_ns() - int(age_s * 1e9):020d}-older"
    git_in(bare, "update-ref", name, blob)
    return name


def _tickets(bare: Path) -> dict[str, str]:
    out = git_in(bare, "for-each-ref", "--format=%(refname) %(objectname)", f"{COUNTER}.tickets/")
    return dict(line.split() for line in out.splitlines())


def _allocating(remote: GitRemote) -> tuple[threading.Thread, list[Ticket]]:
    taken: list[Ticket] = []
    thread = threading.Thread(target=lambda: taken.append(remote.allocate(COUNTER, lambda _l: 41)))
    thread.start()
    return thread, taken


def test_a_writer_leaves_numbering_to_the_writer_of_an_older_ticket(
    bare: Path, tmp_path: Path
) -> None:
    older = _pending_ticket(bare, 0.5)
    writer = GitRemote(bare.as_uri(), tmp_path / "writer")
    thread, taken = _allocating(writer)
    deadline = time.monotonic() + 30
    while len(_tickets(bare)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # several looks at the remote: a writer numbering at once would have by now
    pending = git_in(bare, "rev-parse", older).strip()
    assert set(_tickets(bare).values()) == {pending}, "the younger writer numbered"
    # the older ticket's writer numbers every pending ticket it lists, in one push
    oldest = GitRemote(bare.as_uri(), tmp_path / "oldest")
    assert oldest._number(COUNTER, oldest.listing(), pending, lambda _l: 41) is not None
    thread.join(timeout=30)
    assert [t.number for t in taken] == [43]
    assert git_in(bare, "cat-file", "blob", _tickets(bare)[older]).strip() == "42"


def test_a_ticket_whose_writer_died_holds_a_writer_back_only_a_moment(
    bare: Path, tmp_path: Path
) -> None:
    older = _pending_ticket(bare, 2.0)
    thread, taken = _allocating(GitRemote(bare.as_uri(), tmp_path / "writer"))
    thread.join(timeout=30)
    # it numbered both, in ticket order: the dead writer's number stays taken
    assert [t.number for t in taken] == [43]
    assert git_in(bare, "cat-file", "blob", _tickets(bare)[older]).strip() == "42"
