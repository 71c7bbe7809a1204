"""Writes to the remote: plumbing commits and refs, pushed with a compare-and-swap.

`GitRemote` is the facade the blocks use: the mirror and its object reads (`GitObjects`) plus
the writes here. A commit is built from blobs and trees only (never a work tree or an index)
and pushed so that it lands only on the head it was built on; when another writer got there
first, the change is applied again on the new head, after a jittered back-off.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import EllipsisType
from typing import Any

from blocks.gitrepo.errors import RefConflict, check_ref_name, full_ref
from blocks.gitrepo.mirror import COMMITTER, DEFAULT_AUTHOR, NETWORK_TIMEOUT, git_failure
from blocks.gitrepo.objects import Blob, GitObjects

__all__ = ["GitRemote"]

_AUTHOR_RE = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>]*)>\s*$")
# Messages of a push that lost a race: the remote ref is not where the push expected it.
_RACE_MARKERS = (
    "fetch first",
    "non-fast-forward",
    "stale info",
    "already exists",
    "cannot lock ref",
    "but expected",
    "incorrect old value",
)


def _split_author(author: str) -> tuple[str, str]:
    match = _AUTHOR_RE.match(author)
    if match and match["name"] and match["email"]:
        return match["name"], match["email"]
    return author.strip() or COMMITTER[0], COMMITTER[1]


class GitRemote(GitObjects):
    """A bare git remote, read through a local bare mirror and written with CAS pushes.

    Several `GitRemote` objects (threads or processes) may share one `cache_dir`: the mirror is
    guarded by an `flock` on `<mirror>.lock` while it is fetched into or written to. Reads
    (`list_files`, `read_files`, `diff`, `log`, `resolve`) see the mirror as of the last fetch
    and take no lock: git objects never change and refs are updated atomically.

    Args:
        url: the remote's git URL (any URL git understands; credentials in it are never
            printed).
        cache_dir: folder holding the mirror `<sha256(url)[:16]>.git` and its lock file.
        attempts: how many times `commit` tries before giving up on a busy branch.
        timeout: seconds after which a fetch or push is killed.
    """

    backoff_base = 0.02
    backoff_cap = 2.0

    def __init__(
        self,
        url: str,
        cache_dir: Path | str,
        *,
        attempts: int = 40,
        timeout: float = NETWORK_TIMEOUT,
    ) -> None:
        super().__init__(url, cache_dir, timeout=timeout)
        self.attempts = attempts
        self._counted: dict[str, int] = {}
        self._written: dict[int, str] = {}
        # the change-management repo's commits are SSH-signed with this key (issue 12)
        self.signing_key: Path | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled or deep-copied (task runners, model copies) as its settings: the copy opens
        # the same mirror.
        key = str(self.signing_key) if self.signing_key else None
        return (_restore, (self.url, str(self.cache_dir), self.attempts, self.timeout, key))

    def _push(
        self, source: str, ref: str, lease: str | EllipsisType | None, *, moves: bool = False
    ) -> bool:
        """Push `source` to the remote `ref`: True when done, False when a CAS lost the race.

        `lease` is the value the remote ref must have (None: must not exist); `...` pushes
        without force, which for a commit on top of the old head is itself a compare-and-swap.
        With `moves`, a ref already at `source` also lost: git calls that push "up to date"
        without looking at the lease, but another writer put it there.
        """
        args = ["push", "--porcelain", "--verbose" if moves else "--quiet"]
        if lease is not ...:
            args.append(f"--force-with-lease={ref}:{lease or ''}")
        args += ["origin", f"{source}:{ref}" if source else f":{ref}"]
        status, out, err = self._run(*args, network=True, check=False)
        if status == 0:
            lines = out.decode("utf-8", "replace").splitlines()
            return not (moves and any(line.startswith("=\t") for line in lines))
        report = out.decode("utf-8", "replace") + "\n" + err
        rejected = any(line.startswith("!") for line in report.splitlines())
        if rejected and any(marker in report for marker in _RACE_MARKERS):
            return False
        raise git_failure(f"push to {ref}", status, report)

    def _backoff(self, attempt: int, took: float) -> float:
        # Full jitter over a window that grows linearly, in units of how long an attempt
        # takes here: losers spread over about as many slots as there are contenders, so the
        # remote is rarely idle and rarely raced (measured better than exponential backoff).
        slot = max(took, self.backoff_base)
        return random.uniform(0.0, min(self.backoff_cap, slot * (attempt + 1)))

    def commit(
        self,
        branch: str,
        change: Callable[[str | None], Mapping[str, bytes | Blob | None] | None],
        message: str | Callable[[], str],
        *,
        author: str | Callable[[], str] = DEFAULT_AUTHOR,
        start_point: str | None = None,
        signing_key: Path | None = None,
        narrow: bool = False,
    ) -> str | None:
        """Commit `change(parent)` on `branch` and push it with a compare-and-swap, retrying.

        Each attempt fetches, takes the branch head as parent (or `start_point` when the branch
        does not exist yet; an orphan commit without either), and calls `change(parent)`; it
        returns path → new content (a `Blob` already in the mirror, None deletes) or None / {}
        for nothing to do. When the push finds the branch moved, `change` is called again on
        the new head. History stays linear.

        `change` runs with the mirror locked (the lock is re-entrant within a thread), so it
        should only read (`read_files`, `list_files`, `diff`, `path_types`).

        Args:
            branch: branch name (without `refs/heads/`).
            change: builds the change from the parent commit.
            message: the commit message, or a callable giving it after `change` ran.
            author: "name <email>" of the author (the committer is changeflow), or a callable
                giving it after `change` ran.
            start_point: ref the branch starts from when it does not exist.
            signing_key: an OpenSSH private key file: the commit carries its SSH signature
                (git's `gpg.format=ssh`; `signing_key` defaults to the remote's own).
            narrow: fetch only this branch before each attempt (`change` then reads nothing
                else): one branch of many that writers use at once.

        Returns:
            The new head; the parent when the change altered nothing; None when `change`
            returned nothing to do.

        Raises:
            RefConflict: when every attempt lost the race.
            GitError: when a push fails for another reason.
        """
        ref = full_ref(f"refs/heads/{branch}")
        for attempt in range(self.attempts):
            with self._locked():
                started = time.monotonic()
                self._fetch(ref if narrow else None)
                head, base = self._head_and_tree(ref)
                if head:
                    self._remember(head)
                parent = head
                if parent is None and start_point is not None:
                    parent = self._commit_of(start_point)
                    base = self.tree_of(parent)
                changes = change(parent)
                if not changes:
                    return None
                tree = self._write_tree(base, changes)
                if tree == base or (parent is None and tree == self._empty()):
                    if head is not None or parent is None:
                        return head  # nothing changed: no empty commit
                    new = parent  # a new branch with nothing new on it: just create it
                else:
                    text = (message() if callable(message) else message).rstrip("\n") + "\n"
                    name, email = _split_author(author() if callable(author) else author)
                    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
                    args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-"]
                    if key := signing_key or self.signing_key:
                        # -c before the command: the key is never in the mirror's config
                        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingKey={key}"]
                        args = [*sign, "commit-tree", "-S", *args[1:]]
                    new = self._run(*args, stdin=text.encode("utf-8"), env=env)[1].decode().strip()
                # A plain push of a child of the old head is a CAS (non-fast-forward otherwise);
                # a new branch must still not exist.
                if self._push(new, ref, ... if head else None):
                    return new
            # Back off outside the lock, so writers sharing the mirror can go meanwhile.
            time.sleep(self._backoff(attempt, time.monotonic() - started))
        raise RefConflict(f"gave up writing to {branch} after {self.attempts} attempts")

    def allocate(self, ref: str, start: Callable[[], int]) -> int:
        """Advance the counter kept in `ref` by one; return the number taken.

        Writers taking numbers at once are served together: each first pushes a ticket
        (`<ref>.tickets/<time>-<uuid>`, pointing at a "pending" blob; no two collide), then
        whoever gets there first numbers every pending ticket it sees, in name order, and
        moves the counter past them in one atomic push whose compare-and-swaps cover the
        counter and each ticket. A writer whose ticket was numbered by another is done: a
        burst of writers costs a few rounds, not one round per writer. The counter and the
        numbers are blobs holding the number, recognised by their object ids.

        Args:
            ref: a ref outside branches and tags, e.g. `refs/changeflow/last-change-id`.
            start: the last number in use when the ref does not exist yet.

        Raises:
            RefConflict: when every attempt lost the race.
        """
        if not ref.startswith("refs/") or ref.startswith(("refs/heads/", "refs/tags/")):
            raise ValueError(f"a counter lives outside branches and tags: {ref!r}")
        check_ref_name(ref.removeprefix("refs/"))
        tickets = f"{ref}.tickets/"
        mine = f"{tickets}{time.time_ns():020d}-{uuid.uuid4().hex}"
        with self._locked():
            pending = self._hash_blobs([b"pending\n"])[0]
            if not self._push(pending, mine, None):
                raise RefConflict(f"{mine} exists already")
        for attempt in range(self.attempts):
            started = time.monotonic()
            listed = self.listing(ref, f"{tickets}*")
            if (taken := listed.get(mine)) != pending and taken is not None:
                number = self._counter_value(mine, taken)
                self._push("", mine, taken)  # done with it (a failure leaves a stale ticket)
                return number
            if taken is None:
                raise RefConflict(f"{mine} was deleted by another writer")
            current = listed.get(ref)
            last = start() if current is None else self._counter_value(ref, current)
            waiting = sorted(t for t, sha in listed.items() if t != ref and sha == pending)
            numbers = {t: last + i for i, t in enumerate(waiting, start=1)}
            with self._locked():
                updates = {t: self._counter_blob(n) for t, n in numbers.items()}
                updates[ref] = updates[waiting[-1]] if waiting else self._counter_blob(last)
                if self._push_all(updates, {**dict.fromkeys(waiting, pending), ref: current}):
                    self._push("", mine, updates[mine])
                    return numbers[mine]
            time.sleep(self._backoff(attempt, time.monotonic() - started))
        raise RefConflict(f"gave up advancing {ref} after {self.attempts} attempts")

    def listing(self, *patterns: str) -> dict[str, str]:
        """Return ref → object sha of the remote's refs matching `patterns` (`ls-remote`)."""
        out = self._run("ls-remote", "origin", *patterns, network=True)[1].decode()
        return {ref: sha for sha, _, ref in (line.partition("\t") for line in out.splitlines())}

    def _push_all(self, updates: dict[str, str], leases: dict[str, str | None]) -> bool:
        """Push every ref to its value in one atomic push, each under its compare-and-swap."""
        args = ["push", "--porcelain", "--atomic", "--quiet"]
        args += [f"--force-with-lease={r}:{leases.get(r) or ''}" for r in updates]
        status, out, err = self._run(
            *args, "origin", *(f"{v}:{r}" for r, v in updates.items()), network=True, check=False
        )
        if status == 0:
            return True
        report = out.decode("utf-8", "replace") + "\n" + err
        if any(marker in report for marker in (*_RACE_MARKERS, "atomic push failed")):
            return False
        raise git_failure("push", status, report)

    def counter(self, ref: str) -> int | None:
        """The value of the counter `allocate` keeps in `ref` on the remote, None when unset."""
        current = self.listing(ref).get(ref)
        return None if current is None else self._counter_value(ref, current)

    def _counter_blob(self, number: int) -> str:
        """The blob holding `number`, written into the mirror with the next few (one process
        for a run of allocations)."""
        if number not in self._written:
            numbers = list(range(number, number + 16))
            shas = self._hash_blobs([f"{n}\n".encode() for n in numbers])
            self._written.update(zip(numbers, shas, strict=True))
            self._counted.update(zip(shas, numbers, strict=True))
        return self._written[number]

    def _counter_value(self, ref: str, sha: str) -> int:
        if sha not in self._counted and len(sha) == 40:
            # git's object id of a blob is sha1("blob <size>\\0" + content): the next values
            # are recognised without reading the object from the remote
            last = max(self._counted.values(), default=0)
            for n in range(last, last + 256):
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

    def set_ref(self, ref: str, commit: str, *, expected: str | EllipsisType | None = ...) -> None:
        """Create or move a branch or tag on the remote with a compare-and-swap.

        Args:
            ref: full ref (`refs/heads/…` or `refs/tags/…`).
            commit: commit (or ref) to point it at; it must be in the mirror.
            expected: the value the remote ref must have now: a sha, None for "must not
                exist", or left out for "what the mirror sees after a fresh fetch".

        Raises:
            RefConflict: when the remote ref is not at `expected`.
        """
        ref = full_ref(ref)
        with self._locked():
            if expected is ...:
                self._fetch()
                expected = self._ref_value(ref)
            target = self._commit_of(commit)
            if not self._push(target, ref, expected):
                raise RefConflict(f"{ref} is not at {expected or '(absent)'} on the remote")

    def delete_ref(self, ref: str, *, expected: str | EllipsisType | None = ...) -> None:
        """Delete a branch or tag on the remote (nothing to do when it is absent).

        Args:
            ref: full ref (`refs/heads/…` or `refs/tags/…`).
            expected: the value the remote ref must have now (None: nothing to delete), or
                left out for "what the mirror sees after a fresh fetch".

        Raises:
            RefConflict: when the remote ref is not at `expected`.
        """
        ref = full_ref(ref)
        with self._locked():
            if expected is ...:
                self._fetch()
                expected = self._ref_value(ref)
            if expected is None:
                return
            if not self._push("", ref, expected):
                raise RefConflict(f"{ref} is not at {expected} on the remote")


def _restore(
    url: str, cache_dir: str, attempts: int, timeout: float, key: str | None = None
) -> GitRemote:
    remote = GitRemote(url, cache_dir, attempts=attempts, timeout=timeout)
    remote.signing_key = Path(key) if key else None
    return remote
