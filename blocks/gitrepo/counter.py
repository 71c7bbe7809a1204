"""A counter kept in a ref, advanced for writers taking numbers at once (CR ids).

Each writer pushes a ticket, `<ref>.tickets/<time>-<uuid>` pointing at a "pending" blob (no two
collide); the writer of the oldest pending ticket numbers every pending ticket it lists, in
name order, and moves the counter past them in one atomic push whose compare-and-swaps cover
the counter and each ticket. A burst of writers costs a few rounds, not one round per writer.
The others look again rather than race it with the same push, which all but one would lose
(a push naming twenty refs costs the remote as much as a commit); after `DEFER_S` they number
too, in case its writer died. The counter and the numbers are blobs holding the number,
recognised by their object ids.

A numbered ticket stays until its writer deletes it in the push that writes what the number
was for (`GitRemote.commit(..., release=...)`): while it exists, that work is in flight, so
the last writer of a burst to land can tell it is the last (`ticket_ages`). Tickets older
than `STALE_S` (their writer died) are deleted by the next numbering.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blocks.gitrepo.errors import RefConflict, check_ref_name
from blocks.gitrepo.mirror import NETWORK_TIMEOUT
from blocks.gitrepo.pushes import GitPushes

__all__ = ["DEFER_S", "STALE_S", "GitCounters", "Ticket"]

STALE_S = 300.0
# how long in all a writer leaves numbering its ticket to the writer of an older one (longer
# only if that one died before numbering), looking again every `_POLL_S`
DEFER_S = 1.0
_POLL_S = 0.05
_PAUSE_S = 0.05
_PENDING = b"pending\n"


@dataclass(frozen=True)
class Ticket:
    """A number taken from a counter, and the ticket that holds it until the work is pushed.

    Attributes:
        number: the number taken.
        ref: the ticket's ref on the remote.
        value: the blob the ticket holds (the number), its lease for deleting it.
        listed: the remote's refs (every one) as last listed while taking it.
    """

    number: int
    ref: str
    value: str
    listed: dict[str, str]


def _age_s(ticket: str) -> float:
    """Seconds since a ticket was pushed, by the time in its name (0 when unreadable)."""
    stamp = ticket.rsplit("/", 1)[-1].split("-", 1)[0]
    return (time.time_ns() - int(stamp)) / 1e9 if stamp.isdigit() else 0.0


class GitCounters(GitPushes):
    """Counters kept in refs, with tickets for writers taking numbers at once."""

    attempts = 40

    def __init__(
        self, url: str, cache_dir: Path | str, *, timeout: float = NETWORK_TIMEOUT
    ) -> None:
        super().__init__(url, cache_dir, timeout=timeout)
        self._counted: dict[str, int] = {}
        self._written: dict[int, str] = {}
        self._pending = ""

    def _pending_blob(self) -> str:
        if not self._pending:
            self._pending = self._hash_blobs([_PENDING])[0]
        return self._pending

    def allocate(self, ref: str, start: Callable[[dict[str, str]], int]) -> Ticket:
        """Advance the counter kept in `ref` by one; return the number taken and its ticket.

        The ticket stays on the remote, holding the number, until the caller deletes it (in
        the push of the work the number was for; `Ticket.value` is its lease).

        Args:
            ref: a ref outside branches and tags, e.g. `refs/changeflow/last-change-id`.
            start: the last number in use when the ref does not exist yet, given the remote's
                refs as listed.

        Raises:
            RefConflict: when every attempt lost the race.
        """
        if not ref.startswith("refs/") or ref.startswith(("refs/heads/", "refs/tags/")):
            raise ValueError(f"a counter lives outside branches and tags: {ref!r}")
        check_ref_name(ref.removeprefix("refs/"))
        tickets = f"{ref}.tickets/"
        pending = self._pending_blob()
        mine = ""
        lost = False
        deferring_until = time.monotonic() + DEFER_S
        for attempt in range(self.attempts):
            started = time.monotonic()
            if not mine:
                mine = f"{tickets}{time.time_ns():020d}-{uuid.uuid4().hex}"
                with self._locked():
                    if not self._push(pending, mine, None):
                        raise RefConflict(f"{mine} exists already")
            listed = self._listing_once_numbered(tickets, mine, pending, deferring_until)
            taken = listed.get(mine)
            if taken is not None and taken != pending:
                return Ticket(self._counter_value(mine, taken), mine, taken, listed)
            if taken is None:
                mine = ""  # deleted as stale (a clock far behind): take a new ticket
                continue
            numbered = self._number(ref, listed, pending, start)
            if numbered is not None and mine in numbered:
                listed.update(numbered)
                now = {r: sha for r, sha in listed.items() if sha}  # without the stale deleted
                return Ticket(self._counter_value(mine, now[mine]), mine, now[mine], now)
            if numbered is None:
                # the winner likely numbered this ticket too: look again at once; losing
                # again, after a short pause (a numbering round is one push: the contenders
                # are few, and a long back-off would only leave the remote idle)
                if lost:
                    time.sleep(min(self.backoff(attempt, time.monotonic() - started), _PAUSE_S))
                lost = True
        if mine:  # no one is to wait for a ticket that will never be numbered here
            self.push_refs({mine: ""}, {mine: pending})
        raise RefConflict(f"gave up advancing {ref} after {self.attempts} attempts")

    def _listing_once_numbered(
        self, tickets: str, mine: str, pending: str, deadline: float
    ) -> dict[str, str]:
        """List the remote's refs; while an older ticket than `mine` is pending too, list again
        after a pause, until `deadline` (monotonic): its writer numbers both in its own round,
        and a second writer numbering the same tickets at once only loses that push."""
        while True:
            listed = self.listing()
            waiting = [t for t, sha in listed.items() if t.startswith(tickets) and sha == pending]
            older = [t for t in waiting if t < mine and _age_s(t) <= STALE_S]
            if listed.get(mine) != pending or not older or time.monotonic() >= deadline:
                return listed
            time.sleep(_POLL_S)

    def _number(
        self,
        ref: str,
        listed: dict[str, str],
        pending: str,
        start: Callable[[dict[str, str]], int],
    ) -> dict[str, str] | None:
        """Number every pending ticket listed and delete stale ones, in one atomic push; return
        the refs it moved (None when it lost the race)."""
        tickets = f"{ref}.tickets/"
        current = listed.get(ref)
        last = start(listed) if current is None else self._counter_value(ref, current)
        waiting = sorted(t for t, sha in listed.items() if t.startswith(tickets) and sha == pending)
        stale = [t for t in listed if t.startswith(tickets) and _age_s(t) > STALE_S]
        fresh = [t for t in waiting if t not in stale]
        with self._locked():
            numbers = {t: self._counter_blob(last + i) for i, t in enumerate(fresh, start=1)}
            updates = {**numbers, **dict.fromkeys(stale, ""), ref: self._counter_blob(last)}
            if fresh:
                updates[ref] = numbers[fresh[-1]]
            leases = {t: listed[t] for t in [*fresh, *stale]}
            return updates if self.push_refs(updates, {**leases, ref: current}) else None

    def counter(self, ref: str, listed: dict[str, str] | None = None) -> int | None:
        """The value of the counter `allocate` keeps in `ref` on the remote (as `listed`, else
        listed now), None when unset."""
        current = (self.listing(ref) if listed is None else listed).get(ref)
        return None if current is None else self._counter_value(ref, current)

    def ticket_ages(self, ref: str, listed: dict[str, str]) -> dict[str, float]:
        """The tickets of the counter `ref` as `listed` (pending or numbered, work in flight),
        and how long ago each was taken, in seconds (by the clock of the writer that took it)."""
        tickets = f"{ref}.tickets/"
        return {name: _age_s(name) for name in listed if name.startswith(tickets)}

    def _counter_blob(self, number: int) -> str:
        """The blob holding `number`, written into the mirror with the next few."""
        if number not in self._written:
            numbers = list(range(number, number + 16))
            shas = self._hash_blobs([f"{n}\n".encode() for n in numbers])
            self._written.update(zip(numbers, shas, strict=True))
            self._counted.update(zip(shas, numbers, strict=True))
        return self._written[number]

    def _counter_value(self, ref: str, sha: str) -> int:
        if sha not in self._counted and len(sha) == 40:
            # git's object id of a blob is sha1("blob <size>\\0" + content): the values near
            # the last one seen are recognised without reading the object from the remote
            last = max(self._counted.values(), default=0)
            for n in range(max(0, last - 256), last + 256):
                body = f"{n}\n".encode()
                header = f"blob {len(body)}\0".encode()
                self._counted[hashlib.sha1(header + body, usedforsecurity=False).hexdigest()] = n
        if sha not in self._counted:
            with self._locked():
                self._run("fetch", "--quiet", "origin", f"+{ref}:{ref}", network=True)
                text = self._text("cat-file", "blob", sha)
            if not text.isdigit():
                raise RefConflict(f"{ref} does not hold a number")
            self._counted[sha] = int(text)
        return self._counted[sha]
