"""The change-management block: change requests in a git repo, one branch per shard of ids.

`blocks.change_layout` says where each thing lives. Filing takes an id from the counter, then
commits the CR on its shard, where no other filing writes, in the push that deletes its id's
ticket; every write then brings main (what people browse and clone) up to date, once for a
burst (`blocks.change_publish`). CRs filed before shards are indexed on the first write
(`blocks.change_migration`). The same repo keeps the incidents (`blocks.incidents.GitIncidents`);
`ChangeRepo` is what both blocks share.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable, Collection, Mapping

from pydantic import HttpUrl

from blocks.change_index import artifact_entries, read_deployments
from blocks.change_layout import (
    BEFORE_SHARDS,
    BRANCH,
    CHANGES_DIR,
    COUNTER,
    ENVIRONMENTS_DIR,
    OPEN_DIR,
    SHARD_REFS,
    SHARDS,
    change_paths,
    files_of,
    shard_branch,
)
from blocks.change_migration import INDEX_SUBJECT, before_shards, index_before_shards, unindexed
from blocks.change_publish import publish, settle
from blocks.change_repo import LOGO, ChangeRepo
from blocks.gitrepo import GitError, redact
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


class _Unindexed(Exception):
    """The CR being updated was filed before shards and is not on its shard yet."""


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

    def _last_number(self, listed: dict[str, str]) -> int:
        """The highest id filed, for a repo whose counter does not exist yet (one written by an
        earlier version keeps its CRs on main only); 0 when the remote has no branch."""
        if not any(ref.startswith("refs/heads/") for ref in listed):
            return 0
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
        return self._found(parent, change_id)[0]

    def _found(self, parent: str | None, change_id: str) -> tuple[ChangeRequest | None, bool]:
        """The record at a shard head or on main, and whether it was on the shard."""
        record = change_paths(change_id)[0]
        names = [f"{parent}:{record}"] if parent else []
        names.append(f"refs/heads/{BRANCH}:{record}")
        for name, data in zip(names, self.git.read_blobs(names), strict=True):
            if data is not None:
                return self._parse(change_id, data, name), parent is not None and name == names[0]
        return None, False

    def create(
        self,
        draft: Callable[[str], ChangeRequest],
        message: str = "change request created",
        *,
        by: str | None = None,
    ) -> ChangeRequest:
        """File a new change request under the next id.

        The id is taken first (a ticket the counter numbers), then drafted once and committed
        on its shard, where no other filing writes, in the push that deletes the ticket: a
        draft is never built twice. A writer killed in between leaves an id without a CR,
        never half a CR; one that fails deletes its ticket.

        Args:
            draft: builds the record for the id it is given.
            message: why, for the commit message.
            by: who, the commit's author.

        Returns:
            The record as committed.
        """
        ticket = self.git.allocate(COUNTER, self._last_number)
        change_id = format_change_id(ticket.number)
        try:
            cr = draft(change_id)
            if cr.id != change_id:
                raise BadInput(f"the draft change request has id {cr.id}, not {change_id}")
            files = {**files_of(cr), **artifact_entries(cr)}  # the index by digest: filing only

            def change(parent: str | None) -> Mapping[str, bytes | Blob | None]:
                record = change_paths(change_id)[0]
                if parent is not None and self.git.path_types(parent, [record]):
                    raise IntegrityError(f"{change_id} is filed already: the id counter went back")
                return files

            text, branch = describe_change(cr, message, by), shard_branch(change_id)
            head = self.git.commit(
                branch,
                change,
                text,
                author=author_of(by),
                narrow=True,
                release={ticket.ref: ticket.value},
                listed=ticket.listed,
            )
        except BaseException:
            # no one waits for a filing that will not land (a ticket left behind is deleted
            # by a later numbering, once stale)
            with contextlib.suppress(GitError):
                self.git.push_refs({ticket.ref: ""}, {ticket.ref: ticket.value})
                settle(self.git, None, None)  # as if it landed: it may be the last of a burst
            raise
        tickets = f"{COUNTER}.tickets/"
        burst = any(r.startswith(tickets) and r != ticket.ref for r in ticket.listed)
        settle(self.git, branch, head, burst=burst)
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
        indexed = [False]

        def change(parent: str | None) -> Mapping[str, bytes | Blob | None]:
            stored, on_shard = self._found(parent, cr.id)
            if not on_shard:  # filed before shards, or unknown: main as it is now decides
                self.git.fetch(f"refs/heads/{BRANCH}")
                stored, on_shard = self._found(parent, cr.id)
            if stored is None:
                raise BadInput(f"unknown change request {cr.id}")
            if not on_shard and not indexed[0]:
                raise _Unindexed  # filed before shards: its shard log starts with its index
            if stored.environment != cr.environment:
                raise BadInput(f"{cr.id} is filed for {stored.environment}, not {cr.environment}")
            if expected is not None:
                check_revision(stored, cr, expected)
            return files

        text, branch = describe_change(cr, message, by), shard_branch(cr.id)
        try:
            head = self.git.commit(branch, change, text, author=author_of(by), narrow=True)
        except _Unindexed:
            index_before_shards(self.git)
            indexed[0] = True
            head = self.git.commit(branch, change, text, author=author_of(by), narrow=True)
        publish(self.git, branch, head)
        return cr

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
        own = self.git.log(f"refs/heads/{shard_branch(id)}", path=path)
        if own and not own[-1].message.startswith(INDEX_SUBJECT):
            return own  # born on its shard (the usual case)
        # filed before shards: its earlier history is main's, up to where that ended
        before = before_shards(self.git)
        older = self.git.log(before, path=path) if before else []
        return own[:-1] + older

    def list(
        self, environment: str | None = None, open_only: bool = False
    ) -> builtins.list[ChangeRequest]:
        """Return the change requests of `environment` (every one when None), only the open
        ones with `open_only`, sorted by id.

        Reads one folder of each shard (`open/<env>`, `environments/<env>`, or `changes`) and
        the records listed there: what it leaves out is never read. In a repo whose CRs filed
        before shards are not indexed yet (no write since), those are read from main too.

        Raises:
            BadInput: for a name that cannot be an environment.
        """
        check_listing(environment)
        self.git.fetch()
        branches = self.git.refs("refs/heads/")
        heads = sorted(sha for ref, sha in branches.items() if ref.startswith(SHARD_REFS))
        main = branches.get(f"refs/heads/{BRANCH}")
        # main's `.changeflow` folder, read in the same batch: does it say old CRs are indexed?
        meta = [f"{main}:{BEFORE_SHARDS.rsplit('/', 1)[0]}"] if main else []
        if open_only and environment is None:  # open CRs of every environment: a level down
            tops = self.git.read_trees([*(f"{h}:{OPEN_DIR}" for h in heads), *meta])
            marks = tops.pop() if meta else None
            trees = self.git.read_trees(
                [e[2] for top in tops for e in (top or {}).values() if e[1] == "tree"]
            )
        else:
            folder = OPEN_DIR if open_only else ENVIRONMENTS_DIR if environment else CHANGES_DIR
            path = f"{folder}/{environment}" if environment else folder
            trees = self.git.read_trees([*(f"{h}:{path}" for h in heads), *meta])
            marks = trees.pop() if meta else None
        entries = sorted(
            (name.removesuffix(".json"), entry[2])
            for tree in trees
            for name, entry in (tree or {}).items()
            if name.endswith(".json") and is_change_id(name.removesuffix(".json"))
        )
        if main and BEFORE_SHARDS.rsplit("/", 1)[1] not in (marks or {}):
            entries = sorted(entries + self._before_shards(main))
        blobs = self.git.read_blobs([sha for _, sha in entries])
        crs = [
            self._parse(i, data, sha)
            for (i, sha), data in zip(entries, blobs, strict=True)
            if data is not None
        ]
        return [cr for cr in crs if listed(cr, environment, open_only)]

    def _before_shards(self, main: str) -> builtins.list[tuple[str, str]]:
        """(id, record blob) of the CRs on main (at commit `main`) that no shard holds yet (an
        old repo before its first write indexes them): `list` filters them like the others."""
        return [(i, record) for i, (record, _) in unindexed(self.git, main).items()]

    def deployments(self, sha256s: Collection[str]) -> builtins.list[ChangeRequest]:
        """The CRs whose bill of materials names one of the digests (`blocks.change_index`).

        Raises:
            BadInput: for a malformed digest.
        """
        return read_deployments(self.git, sha256s)

    def link(self, cr: ChangeRequest) -> str:
        """The CR's record in the repo: `<remote_url>#changes/<id>.json`, credentials hidden."""
        return f"{redact(self.remote_url)}#{change_paths(cr.id)[0]}"

    def decision(self, id: str) -> Approval | None:
        """The latest decision recorded in the CR itself, if any.

        Raises:
            BadInput: when there is no change request with that id.
        """
        return self.get(id).decision
