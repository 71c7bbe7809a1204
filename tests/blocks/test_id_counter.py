"""Numbering tickets (`blocks.gitrepo.counter`): a burst of writers leaves numbering to the one
with the oldest ticket, and a ticket whose writer died holds the others back only a moment."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from stack_support import git_in, push_ticket

from blocks.gitrepo import GitRemote
from blocks.gitrepo.counter import Ticket

COUNTER = "refs/changeflow/last-change-id"


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
    older = push_ticket(bare, 0.5, name="older")
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
    older = push_ticket(bare, 2.0, name="older")
    thread, taken = _allocating(GitRemote(bare.as_uri(), tmp_path / "writer"))
    thread.join(timeout=30)
    # it numbered both, in ticket order: the dead writer's number stays taken
    assert [t.number for t in taken] == [43]
    assert git_in(bare, "cat-file", "blob", _tickets(bare)[older]).strip() == "42"
