"""Checking out an application's source at one commit."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from git import GitCommandError, Repo
from git.exc import GitError

from changeflow.errors import BadInput
from changeflow.names import validate_repo_url

__all__ = ["GIT_PROTOCOLS", "checkout", "commit_all"]

GIT_PROTOCOLS = "https:http:ssh:file"
"""The transports a clone may use (`GIT_ALLOW_PROTOCOL`): never `ext::`, which runs a command,
nor `fd::` or any other remote helper, also for submodules and redirects."""


def checkout(repo_url: str, commit_sha: str, parent: Path | None = None) -> Path:
    """Clone `repo_url` into a new folder and check out `commit_sha` (detached).

    The URL is checked again here, where it reaches git, and git may use only `GIT_PROTOCOLS`.

    Raises:
        BadInput: when the URL is not a repository URL, or the repository or the commit
            cannot be found.
    """
    try:
        validate_repo_url(repo_url)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": GIT_PROTOCOLS}
    target = Path(tempfile.mkdtemp(prefix="changeflow-src-", dir=parent))
    try:
        repo = Repo.clone_from(repo_url, target, no_checkout=True, env=env)
        repo.git.checkout("--detach", commit_sha)
    except GitCommandError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise BadInput(
            f"cannot check out {commit_sha} from {repo_url}: {exc.stderr.strip()}"
        ) from exc
    except GitError as exc:  # GitPython's own refusals (an unsafe protocol or option)
        shutil.rmtree(target, ignore_errors=True)
        raise BadInput(f"cannot check out {commit_sha} from {repo_url}: {exc}") from exc
    return target


def commit_all(workdir: Path, message: str, remote_url: str | None = None) -> str:
    """Commit everything in `workdir` (making it a repo if needed) and push to `remote_url`.

    For sample applications and tests; returns the new commit's sha.
    """
    env = {
        "GIT_AUTHOR_NAME": "changeflow demo",
        "GIT_AUTHOR_EMAIL": "demo@changeflow.invalid",
        "GIT_COMMITTER_NAME": "changeflow demo",
        "GIT_COMMITTER_EMAIL": "demo@changeflow.invalid",
    }
    repo = (
        Repo(workdir) if (workdir / ".git").exists() else Repo.init(workdir, initial_branch="main")
    )
    repo.git.add("--all")
    repo.git.update_environment(**env)
    repo.git.commit("--allow-empty", "-q", "-m", message)
    if remote_url:
        repo.git.push(remote_url, "HEAD:refs/heads/main", "--force")
    return repo.head.commit.hexsha
