"""The change-management block: change requests in a git repo, one branch per shard of ids.

`blocks.change_layout` says where each thing lives. Filing takes an id from the counter, then
commits the CR on its shard, where no other filing writes; every write then brings main (what
people browse and clone) up to date, carrying along what others wrote meanwhile. The same repo
keeps the incidents (`blocks.incidents.GitIncidents`); `ChangeRepo` is what both blocks share.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping

from pydantic import HttpUrl

from blocks.change_layout import (
    BRANCH,
    CHANGES_DIR,
    COUNTER,
    ENVIRONMENTS_DIR,
    OPEN_DIR,
    PUBLISHED,
    SHARD_REFS,
    SHARDS,
    change_paths,
    changed_entries,
    files_of,
    published_note,
    shard_branch,
)
from blocks.change_repo import LOGO, ChangeRepo
from blocks.gitrepo import redact
from blocks.gitrepo.objects import Blob
from changeflow.change_ids import (
    change_number,
    check_listing,
    format_change_id,
    is_change_id,
    listed,
)
from changeflow.change_notes import author_of, describe_change
from changeflow.errors import BadInput, IntegrityError
from changeflow.models import Approval, ChangeRequest
from changeflow.ports import Commit
from changeflow.revisions import check_revision
from changeflow.stored import stored_change_request

__all__ = [
    "BRANCH",
    "CHANGES_DIR",
    "COUNTER",
    "LOGO",
    "SHARDS",
    "ChangeRepo",
    "GitChangeManagement",
    "change_paths",
    "shard_branch",
]

# A writer of the latest id waits up to _WAITS x _POLL seconds for the CRs filed just before
# it to land, and publishes them all at once (one publish instead of a race on main).
_WAITS = 20
_POLL = 0.1


class GitChangeManagement(ChangeRepo):
    """Change requests kept in a git repository, one commit per state change.

    Attributes:
        remote_url: git URL of the bare change-management remote.
        cache_dir: folder for the local mirror; default `$CHANGEFLOW_HOME/repos`.
    """

    _block_type_name = "changeflow Change Management"
    _block_type_slug = "changeflow-change-management"
    _logo_url = LOGO
    _documentation_url = HttpUrl("https://docs.prefect.io/v3/develop/blocks")
    _code_example = """
    ```python
    from blocks.change_management import GitChangeManagement

    changes = GitChangeManagement.load("BLOCK_NAME")
    cr = changes.get("CHG0000001")
    print(changes.history(cr.id))
    ```
    """
    _description = (
        "changeflow change requests in a git repository: changes/<id>.json and a rendered "
        "changes/<id>.md, one commit per state change on the id's branch changes/NN, all of "
        "them shown on branch main."
    )

    @staticmethod
    def _parse(change_id: str, data: bytes, where: str) -> ChangeRequest:
        return stored_change_request(change_id, data, f" at {where[:12]}")

    def _last_number(self) -> int:
        """The highest id filed, for a repo whose counter does not exist yet (one written by an
        earlier version keeps its CRs on main only)."""
        self.git.fetch()
        refs = [f"refs/heads/{BRANCH}", *sorted(self.git.refs(SHARD_REFS))]
        numbers = [
            change_number(name.removesuffix(".json")) or 0
            for tree in self.git.read_trees([f"{ref}:{CHANGES_DIR}" for ref in refs])
            for name in tree or {}
            if name.endswith(".json")
        ]
        return max(numbers, default=0)

    def _stored(self, parent: str | None, change_id: str) -> ChangeRequest | None:
        """The record at a shard head, or on main for a CR filed before shards existed."""
        record = change_paths(change_id)[0]
        names = [f"{parent}:{record}"] if parent else []
        names.append(f"refs/heads/{BRANCH}:{record}")
        for name, data in zip(names, self.git.read_blobs(names), strict=True):
            if data is not None:
                return self._parse(change_id, data, name)
        return None

    def create(
        self,
        draft: Callable[[str], ChangeRequest],
        message: str = "change request created",
        *,
        by: str | None = None,
    ) -> ChangeRequest:
        """File a new change request under the next id.

        The id is taken first (the counter's compare-and-swap), then drafted once and
        committed on its shard, where no other filing writes: a draft is never built twice. A
        writer killed in between leaves an id without a CR, never half a CR.

        Args:
            draft: builds the record for the id it is given.
            message: why, for the commit message.
            by: who, the commit's author.

        Returns:
            The record as committed.
        """
        change_id = format_change_id(self.git.allocate(COUNTER, self._last_number))
        cr = draft(change_id)
        if cr.id != change_id:
            raise BadInput(f"the draft change request has id {cr.id}, not {change_id}")
        files = files_of(cr)

        def change(parent: str | None) -> Mapping[str, bytes | Blob | None]:
            if parent is not None and self._stored(parent, change_id) is not None:
                raise IntegrityError(f"{change_id} is filed already: the id counter went back")
            return files

        text, branch = describe_change(cr, message, by), shard_branch(change_id)
        head = self.git.commit(branch, change, text, author=author_of(by), narrow=True)
        self._settle(branch, head, change_number(change_id) or 0)
        self.name_head()  # so a clone of the remote shows the CRs
        return cr

    def update(
        self,
        cr: ChangeRequest,
        message: str,
        *,
        by: str | None = None,
        expected: str | None = None,
    ) -> ChangeRequest:
        """Write a change request's new state (record, Markdown, index) in one commit.

        With `expected`, the record at the shard head the commit is built on must be that
        revision (or already `cr`); the push's compare-and-swap on the shard makes the check
        and the write one step: when another writer moved it, the check runs again.

        Args:
            cr: the record to store.
            message: what changed and why, for the commit message.
            by: who, the commit's author.
            expected: the revision the caller read.

        Raises:
            BadInput: when no change request has that id, or it would move environment.
            StaleChange: when the CR changed since the caller read it.
        """
        if not is_change_id(cr.id):
            raise BadInput(f"unknown change request {cr.id}")
        files = files_of(cr)

        def change(parent: str | None) -> Mapping[str, bytes | Blob | None]:
            stored = self._stored(parent, cr.id)
            if stored is None:
                raise BadInput(f"unknown change request {cr.id}")
            if stored.environment != cr.environment:
                raise BadInput(f"{cr.id} is filed for {stored.environment}, not {cr.environment}")
            if expected is not None:
                check_revision(stored, cr, expected)
            return files

        text, branch = describe_change(cr, message, by), shard_branch(cr.id)
        head = self.git.commit(branch, change, text, author=author_of(by), narrow=True)
        self._publish(branch, head)
        return cr

    def _settle(self, branch: str, head: str | None, number: int) -> None:
        """Make sure main shows a new CR, publishing as few times as a burst of filings allows.

        The writer of the latest id waits (briefly) for the CRs filed just before it to land,
        publishes them all, and publishes again for any that landed meanwhile. A writer of an
        earlier id returns at once unless main shows the latest CR already: then that
        publish may have missed it, and it publishes itself.
        """
        main = f"refs/heads/{BRANCH}"
        latest = self.git.counter(COUNTER) or number
        if latest > number:
            self.git.fetch(main)
            if self.git.resolve(main) is None or not self.git.path_types(
                main, [change_paths(format_change_id(latest))[0]]
            ):
                return  # the latest writer has not published yet: it will carry this one
            self._publish(branch, head)
            return
        for _ in range(_WAITS):
            if not self._in_flight(number):
                break
            time.sleep(_POLL)
        self._publish(branch, head)
        while self._in_flight(number, unpublished=True):
            self._publish(branch, None)  # what landed after that publish read the shards

    def _in_flight(self, number: int, *, unpublished: bool = False) -> bool:
        """Whether a CR just before `number` is not filed yet (with `unpublished`: filed on its
        shard but not shown on main). One fetch and one read of the `changes` folders."""
        self.git.fetch()
        ids = [format_change_id(n) for n in range(max(1, number - SHARDS + 1), number)]
        refs = [f"refs/heads/{BRANCH}", *(f"refs/heads/{shard_branch(i)}" for i in ids)]
        folders = dict(
            zip(refs, self.git.read_trees([f"{r}:{CHANGES_DIR}" for r in refs]), strict=True)
        )
        shown = folders[refs[0]] or {}
        waiting = [
            (i, folders[r] or {})
            for i, r in zip(ids, refs[1:], strict=True)
            if f"{i}.json" not in shown
        ]
        filed = [i for i, folder in waiting if f"{i}.json" in folder]
        return bool(filed) if unpublished else len(filed) < len(waiting)

    def _recorded(self, ref: str | None) -> dict[str, str]:
        """The shard heads main at `ref` shows (`.changeflow/published`)."""
        if ref is None or self.git.resolve(ref) is None:
            return {}
        text = self.git.read_files(ref, [PUBLISHED]).get(PUBLISHED, b"").decode()
        return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)

    def _publish(self, branch: str, head: str | None) -> None:
        """Show on main every CR version the shards hold and main does not yet, until main
        shows `head` of shard `branch` (the writer's own).

        Whoever publishes carries along what others wrote meanwhile, so writers that lose the
        race on main find their change there already and stop. Only shards ahead of what main
        records are read (a shard listed before main moved past it is left alone).
        """
        mine = f"refs/heads/{branch}"
        shown: builtins.list[Commit] = []

        def change(parent: str | None) -> Mapping[str, bytes | Blob | None] | None:
            recorded = self._recorded(parent)
            if head is not None and recorded.get(mine) == head:
                return None
            moved = {r: s for r, s in self.git.refs(SHARD_REFS).items() if recorded.get(r) != s}
            bases = [recorded[r] for r in moved if r in recorded]
            commits = self.git.commits_between(list(moved.values()), bases)
            new = {c.commit for c in commits}
            ahead = {r: s for r, s in moved.items() if s in new}
            if not ahead or (head is not None and head not in new):
                return None  # main shows it already (and maybe more of its shard)
            # one process reads each shard's folder now and as main last showed it
            names = [f"{s}:{CHANGES_DIR}" for s in ahead.values()]
            names += [f"{recorded[r]}:{CHANGES_DIR}" for r in ahead if r in recorded]
            trees = iter([t or {} for t in self.git.read_trees(names)])
            now = [next(trees) for _ in ahead]
            files: dict[str, bytes | Blob | None] = {}
            for ref, tree in zip(ahead, now, strict=True):
                files.update(changed_entries(tree, next(trees) if ref in recorded else {}))
            recorded.update(ahead)
            files[PUBLISHED] = "".join(f"{r} {s}\n" for r, s in sorted(recorded.items())).encode()
            shown[:] = commits
            return files

        self.git.commit(
            BRANCH,
            change,
            lambda: published_note(shown)[0],
            author=lambda: published_note(shown)[1],
        )

    def get(self, id: str) -> ChangeRequest:
        """Return a change request.

        Raises:
            BadInput: when there is none with that id.
        """
        if not is_change_id(id):
            raise BadInput(f"unknown change request {id}")
        self.git.fetch()
        found = self._stored(self.git.resolve(f"refs/heads/{shard_branch(id)}"), id)
        if found is None:
            raise BadInput(f"unknown change request {id}")
        return found

    def history(self, id: str) -> builtins.list[Commit]:
        """Return the commits that changed a change request, newest first; empty for an unknown
        id."""
        if not is_change_id(id):
            return []
        self.git.fetch()
        path = change_paths(id)[0]
        return self.git.log(f"refs/heads/{shard_branch(id)}", path=path) or self.git.log(
            f"refs/heads/{BRANCH}", path=path
        )

    def list(
        self, environment: str | None = None, open_only: bool = False
    ) -> builtins.list[ChangeRequest]:
        """Return the change requests of `environment` (every one when None), only the open
        ones with `open_only`, sorted by id.

        Reads one folder of each shard (`open/<env>`, `environments/<env>`, or `changes`) and
        the records listed there: what it leaves out is never read.

        Raises:
            BadInput: for a name that cannot be an environment.
        """
        check_listing(environment)
        self.git.fetch()
        heads = sorted(self.git.refs(SHARD_REFS).values())
        if open_only and environment is None:  # open CRs of every environment: a level down
            tops = self.git.read_trees([f"{h}:{OPEN_DIR}" for h in heads])
            trees = self.git.read_trees(
                [e[2] for top in tops for e in (top or {}).values() if e[1] == "tree"]
            )
        else:
            folder = OPEN_DIR if open_only else ENVIRONMENTS_DIR if environment else CHANGES_DIR
            path = f"{folder}/{environment}" if environment else folder
            trees = self.git.read_trees([f"{h}:{path}" for h in heads])
        entries = sorted(
            (name.removesuffix(".json"), entry[2])
            for tree in trees
            for name, entry in (tree or {}).items()
            if name.endswith(".json") and is_change_id(name.removesuffix(".json"))
        )
        blobs = self.git.read_blobs([sha for _, sha in entries])
        crs = [
            self._parse(i, data, sha)
            for (i, sha), data in zip(entries, blobs, strict=True)
            if data is not None
        ]
        return [cr for cr in crs if listed(cr, environment, open_only)]

    def link(self, cr: ChangeRequest) -> str:
        """The CR's record in the repo: `<remote_url>#changes/<id>.json`, credentials hidden."""
        return f"{redact(self.remote_url)}#{change_paths(cr.id)[0]}"

    def decision(self, id: str) -> Approval | None:
        """The latest decision recorded in the CR itself, if any.

        Raises:
            BadInput: when there is no change request with that id.
        """
        return self.get(id).decision
