"""The git change-management repo as a block: where it is, its local mirror, its HEAD.

What `GitChangeManagement` and `GitIncidents` share.
"""

from __future__ import annotations

from abc import ABC
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlparse

from git import GitCommandError, Repo
from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, PrivateAttr

from blocks.change_layout import BRANCH
from blocks.gitrepo import GitRemote, default_cache_dir
from changeflow.settings import Settings

__all__ = ["LOGO", "ChangeRepo"]

# Prefect's CDN names its images `<hash>-<width>x<height>.<ext>`; the tests check the size there.
LOGO = HttpUrl(
    "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
)


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
            # issue 12: every commit to the CR repo is SSH-signed with the deploy key, if any
            from blocks.ssh_signatures import commit_signing_key

            self._remote.signing_key = commit_signing_key()
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
