"""The change-management block: change requests as files in a git repo.

Branch `main` holds `changes/<id>.json` (the record, canonical JSON) and `changes/<id>.md`
(rendered for people). Each state change is one commit saying what, who and why, so
`git log -- changes/<id>.json` is the change request's audit trail. The same repo keeps the
incidents (`blocks.incidents.GitIncidents`); `ChangeRepo` is what both blocks share.
"""

from __future__ import annotations

import builtins
import uuid
from abc import ABC
from collections.abc import Callable
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlparse

from git import GitCommandError, Repo
from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, PrivateAttr

from blocks.gitrepo import GitRemote, default_cache_dir, redact
from changeflow.change_ids import change_number, format_change_id, is_change_id
from changeflow.change_notes import author_of, describe_change
from changeflow.errors import BadInput
from changeflow.models import Approval, ChangeRequest
from changeflow.ports import Commit
from changeflow.render import render_change_request
from changeflow.revisions import check_revision
from changeflow.settings import Settings
from changeflow.stored import stored_change_request

__all__ = [
    "BRANCH",
    "CHANGES_DIR",
    "ChangeRepo",
    "GitChangeManagement",
    "change_paths",
]

BRANCH = "main"
CHANGES_DIR = "changes"
# Prefect's CDN names its images `<hash>-<width>x<height>.<ext>`; the tests check the size there.
LOGO = HttpUrl(
    "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
)


def change_paths(change_id: str) -> tuple[str, str]:
    """Return the paths of a change request's record and its Markdown."""
    return f"{CHANGES_DIR}/{change_id}.json", f"{CHANGES_DIR}/{change_id}.md"


def _files(cr: ChangeRequest) -> dict[str, bytes | None]:
    record, markdown = change_paths(cr.id)
    return {
        record: cr.to_json() + b"\n",
        markdown: render_change_request(cr).encode("utf-8"),
    }


def _local_path(url: str) -> Path | None:
    """The folder of a remote on this machine (a file:// URL or an absolute path), else None."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    return Path(url) if url.startswith("/") else None


class ChangeRepo(Block, ABC):
    """A block on the git change-management repo: where it is and its local mirror.

    Abstract, like the bases of `prefect.blocks.abstract`: `prefect block register` skips it.

    Attributes:
        remote_url: git URL of the bare change-management remote.
        cache_dir: folder for the local mirror; default `$CHANGEFLOW_HOME/repos`.
    """

    remote_url: str = Field(description="git URL of the bare change-management remote.")
    cache_dir: str | None = Field(
        default=None, description="Local mirror folder (default: $CHANGEFLOW_HOME/repos)."
    )

    _remote: GitRemote | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> Self:
        """Build the block from `CHANGEFLOW_CHANGE_REPO_URL` (its mirror under `CHANGEFLOW_HOME`).

        Raises:
            BadInput: when `CHANGEFLOW_CHANGE_REPO_URL` is not set.
        """
        return cls(remote_url=Settings.from_env().require("change_repo_url"))

    @property
    def git(self) -> GitRemote:
        """The `GitRemote` this block reads and writes through (made on first use)."""
        if self._remote is None:
            cache = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
            self._remote = GitRemote(self.remote_url, cache)
        return self._remote

    def head(self) -> str | None:
        """The branch head on the remote, freshly fetched; None for an empty repo."""
        self.git.fetch()
        return self.git.resolve(f"refs/heads/{BRANCH}")

    def name_head(self) -> None:
        """Point a local remote's HEAD at `BRANCH` when it names a branch that does not exist.

        `git init --bare` names `master`, but the records live on `main`: a clone of such a
        remote checks out nothing, and an auditor's first step finds no CR. A HEAD naming a
        branch that exists is someone's choice and stays. Remotes behind a server (https, ssh)
        take their default branch from the server's settings, not from a push.
        """
        path = _local_path(self.remote_url)
        if path is None or not (path / "HEAD").is_file():
            return
        named = (path / "HEAD").read_text(errors="replace").strip().removeprefix("ref: ")
        if named == f"refs/heads/{BRANCH}" or not named.startswith("refs/heads/"):
            return
        repo = Repo(path)
        try:
            repo.git.rev_parse("--verify", "--quiet", named)
        except GitCommandError:
            repo.git.symbolic_ref("HEAD", f"refs/heads/{BRANCH}")


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
        "changes/<id>.md on branch main, one commit per state change."
    )

    def _numbers(self, commit: str | None) -> builtins.list[int]:
        if commit is None:
            return []
        numbers = []
        for path in self.git.list_files(commit, CHANGES_DIR):
            name = path.removeprefix(f"{CHANGES_DIR}/")
            number = change_number(name.removesuffix(".json"))
            if number is not None and name.endswith(".json"):
                numbers.append(number)
        return numbers

    @staticmethod
    def _parse(change_id: str, data: bytes, commit: str) -> ChangeRequest:
        return stored_change_request(change_id, data, f" at {commit[:12]}")

    def create(
        self,
        draft: Callable[[str], ChangeRequest],
        message: str = "change request created",
        *,
        by: str | None = None,
    ) -> ChangeRequest:
        """File a new change request under the next free id.

        The id is one more than the highest in `changes/` at the branch head; a concurrent
        create makes the push lose its compare-and-swap, and the id is allocated again.

        Args:
            draft: builds the record for a given id (may be called more than once).
            message: why, for the commit message.
            by: who, the commit's author.

        Returns:
            The record as committed.
        """
        built: builtins.list[ChangeRequest] = []

        def change(parent: str | None) -> dict[str, bytes | None]:
            change_id = format_change_id(max(self._numbers(parent), default=0) + 1)
            cr = draft(change_id)
            if cr.id != change_id:
                raise BadInput(f"the draft change request has id {cr.id}, not {change_id}")
            built.append(cr)
            return _files(cr)

        # Two writers filing the same record on the same head within one second would build
        # byte-identical commits, and the second push would "succeed" without adding anything:
        # a token of this call keeps every create's commit its own.
        token = uuid.uuid4().hex
        self.git.commit(
            BRANCH,
            change,
            lambda: f"{describe_change(built[-1], message, by)}filing: {token}\n",
            author=author_of(by),
        )
        self.name_head()  # so a clone of the remote shows the CRs
        return built[-1]

    def update(
        self,
        cr: ChangeRequest,
        message: str,
        *,
        by: str | None = None,
        expected: str | None = None,
    ) -> ChangeRequest:
        """Write a change request's new state (record and Markdown) in one commit.

        With `expected`, the record at the head the commit is built on must be that revision
        (or already `cr`); the push's compare-and-swap on the branch makes the check and the
        write one step: when another writer moved the branch, the check runs again on its head.

        Args:
            cr: the record to store.
            message: what changed and why, for the commit message.
            by: who, the commit's author.
            expected: the revision the caller read.

        Raises:
            BadInput: when no change request has that id.
            StaleChange: when the CR changed since the caller read it.
        """
        record, _ = change_paths(cr.id)

        def change(parent: str | None) -> dict[str, bytes | None]:
            if parent is None or record not in self.git.path_types(parent, [record]):
                raise BadInput(f"unknown change request {cr.id}")
            if expected is not None:
                stored = self._parse(cr.id, self.git.read_files(parent, [record])[record], parent)
                check_revision(stored, cr, expected)
            return _files(cr)

        self.git.commit(BRANCH, change, describe_change(cr, message, by), author=author_of(by))
        return cr

    def get(self, id: str) -> ChangeRequest:
        """Return a change request.

        Raises:
            BadInput: when there is none with that id.
        """
        head = self.head()
        record, _ = change_paths(id)
        data = (
            self.git.read_files(head, [record]).get(record) if head and is_change_id(id) else None
        )
        if head is None or data is None:
            raise BadInput(f"unknown change request {id}")
        return self._parse(id, data, head)

    def history(self, id: str) -> builtins.list[Commit]:
        """Return the commits that changed a change request, newest first; empty for an unknown
        id."""
        self.git.fetch()
        return [
            Commit.model_validate(c)
            for c in self.git.log(f"refs/heads/{BRANCH}", path=change_paths(id)[0])
        ]

    def list(self) -> builtins.list[ChangeRequest]:
        """Return every change request, sorted by id."""
        head = self.head()
        if head is None:
            return []
        ids = [format_change_id(n) for n in sorted(self._numbers(head))]
        blobs = self.git.read_files(head, [change_paths(i)[0] for i in ids])
        return [self._parse(i, blobs[change_paths(i)[0]], head) for i in ids]

    def link(self, cr: ChangeRequest) -> str:
        """The CR's record in the repo: `<remote_url>#changes/<id>.json`, credentials hidden."""
        return f"{redact(self.remote_url)}#{change_paths(cr.id)[0]}"

    def decision(self, id: str) -> Approval | None:
        """The latest decision recorded in the CR itself, if any.

        Raises:
            BadInput: when there is no change request with that id.
        """
        return self.get(id).decision
