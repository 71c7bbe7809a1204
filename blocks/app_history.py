"""Reading an application's commits between two of its commits, for a CR's change log.

Each repository is cloned once per deploy run, bare and without trees or blobs
(`--filter=tree:0`: commits only, which is all a log needs), into a temporary folder removed
after. Git may use only `blocks.source.GIT_PROTOCOLS` (never `ext::`, which runs a command),
the URL is checked where it reaches git, a remote that stops answering is given up on, and no
message names a URL's credentials. Failures are answered, never raised: an unreachable
repository must not stop a deployment, its CR says why its change log is missing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git

from blocks.source import GIT_PROTOCOLS
from changeflow.names import validate_repo_url
from changeflow.redaction import redact

__all__ = ["CHANGE_LOG_TIMEOUT", "AppHistoryError", "read_commit_logs"]

CHANGE_LOG_TIMEOUT = 60.0
"""Seconds a clone of an application repository may take before git is killed."""
# over http(s), git itself gives up on a transfer slower than 1 byte/s for 20 s
_NETWORK = ["-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=20"]
_SHA = frozenset("0123456789abcdef")


class AppHistoryError(Exception):
    """An application's commits could not be read (the message says why, without secrets)."""


class _Clone:
    """A commits-only bare clone, and the git commands the change log runs in it."""

    def __init__(self, url: str, path: Path, timeout: float) -> None:
        self.url, self.path, self.timeout = url, path, timeout
        self.env = {"GIT_ALLOW_PROTOCOL": GIT_PROTOCOLS, "GIT_TERMINAL_PROMPT": "0"}

    def run(self, *args: str, network: bool = False) -> tuple[int, str, str]:
        # in the clone, once it exists (`clone` itself runs beside it)
        inside = ["--git-dir", str(self.path)] if args[0] != "clone" else []
        status, out, err = git.Git(str(self.path.parent)).execute(
            ["git", *inside, *(_NETWORK if network else []), *args],
            with_extended_output=True,
            with_exceptions=False,
            env=self.env,
            kill_after_timeout=self.timeout if network else None,
        )
        return status, str(out), str(err)

    def fail(self, what: str, err: str) -> AppHistoryError:
        said = "; ".join(line.strip() for line in err.splitlines() if line.strip())
        return AppHistoryError(redact(f"{what} {self.url}: {said or 'git failed'}"))

    def has(self, sha: str) -> bool:
        return self.run("cat-file", "-e", f"{sha}^{{commit}}")[0] == 0

    def ensure(self, sha: str) -> None:
        """Fetch a commit no branch holds (forges let a reachable commit be asked for)."""
        if self.has(sha):
            return
        self.run("fetch", "--quiet", "--filter=tree:0", "--no-tags", "origin", sha, network=True)
        if not self.has(sha):
            raise AppHistoryError(redact(f"commit {sha} is not in {self.url}"))

    def log(self, old: str | None, new: str, limit: int) -> tuple[list[tuple[str, str]], int]:
        span = [new, *([f"^{old}"] if old else [])]
        status, out, err = self.run(
            "log", "-z", "--format=%H%x1f%B", f"--max-count={limit + 1}", *span, "--"
        )
        if status != 0:
            raise self.fail("cannot read the log of", err)
        commits = []
        for record in out.split("\0"):
            sha, _, message = record.strip("\n").partition("\x1f")
            if len(sha) >= 40 and set(sha) <= _SHA:
                commits.append((sha, message.rstrip()))
        total = len(commits)
        if total > limit:
            status, out, err = self.run("rev-list", "--count", *span, "--")
            if status != 0:
                raise self.fail("cannot count the commits of", err)
            total = int(out.strip() or total)
        return commits[:limit], total


@contextmanager
def _cloned(url: str, timeout: float) -> Iterator[_Clone]:
    try:
        validate_repo_url(url)
    except ValueError as exc:
        raise AppHistoryError(f"not read: {exc}") from None
    folder = Path(tempfile.mkdtemp(prefix="changeflow-log-"))
    clone = _Clone(url, folder / "app.git", timeout)
    try:
        # `--` first: the URL can never be read as an option
        status, _, err = clone.run(
            "clone", "--bare", "--quiet", "--no-tags", "--filter=tree:0",
            "--", url, str(clone.path), network=True,
        )  # fmt: skip
        if status != 0:
            raise clone.fail("cannot clone", err)
        yield clone
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_commit_logs(
    ranges: list[tuple[str, str, str | None, str]],
    limit: int,
    timeout: float = CHANGE_LOG_TIMEOUT,
) -> dict[str, tuple[list[tuple[str, str]], int] | str]:
    """Read the commits of each range, cloning each repository once.

    Args:
        ranges: (key, repository URL, old commit or None, new commit) per entry.
        limit: at most this many commits per range, newest first.
        timeout: seconds a clone or fetch may take.

    Returns:
        key → ((sha, message) newest first, how many the range holds), or why it could not
        be read.
    """
    by_url: dict[str, list[tuple[str, str | None, str]]] = {}
    for key, url, old, new in ranges:
        by_url.setdefault(url, []).append((key, old, new))
    found: dict[str, tuple[list[tuple[str, str]], int] | str] = {}
    for url, wanted in by_url.items():
        try:
            with _cloned(url, timeout) as clone:
                for key, old, new in wanted:
                    try:
                        for sha in (new, *([old] if old else [])):
                            clone.ensure(sha)
                        found[key] = clone.log(old, new, limit)
                    except AppHistoryError as exc:
                        found[key] = str(exc)
        except AppHistoryError as exc:
            found.update(dict.fromkeys((key for key, _, _ in wanted), str(exc)))
    return found
