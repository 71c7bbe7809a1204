"""Reading a CR's signed history from a git repository: a mirror, or a bundle's clone.

`git log` checks each commit's SSH signature against an `allowed_signers` file made from the
trust file's `cr-history` keys (`%G?`, `%GS`: the principal is the keyid); the record at each
commit is read with one `cat-file --batch`. The verdicts are `changeflow.chain`'s.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from pydantic import ValidationError

from blocks.commands import command_environment
from blocks.ssh_signatures import history_signers
from changeflow.chain import HistoryCommit
from changeflow.errors import IntegrityError
from changeflow.models import ChangeRequest
from changeflow.trust import TrustPolicy

__all__ = ["GitHistory"]

_TIMEOUT_S = 300
CHANGES_DIR = "changes"  # as `blocks.change_management` keeps them


def _candidate_refs(cr_id: str) -> list[str]:
    """Where a CR's commits may be: its shard branch when the repo has them, else `main`."""
    import blocks.change_management as layout

    shard = getattr(layout, "shard_branch", None)  # CRs on per-shard branches (`changes/NN`)
    return [*([f"refs/heads/{shard(cr_id)}"] if shard else []), "refs/heads/main"]


class GitHistory:
    """The CR history in one local git repository (bare or not).

    Args:
        git_dir: the repository's git folder.
        ref: the branch the records live on; None: each CR's own (`for_change`).
    """

    def __init__(self, git_dir: Path, ref: str | None = None) -> None:
        self.git_dir = git_dir
        self.ref = ref or "refs/heads/main"
        self._fixed = ref is not None

    def for_change(self, cr_id: str) -> GitHistory:
        """The history on the branch a CR's commits are on (its shard's, else `main`)."""
        if self._fixed:
            return self
        for ref in _candidate_refs(cr_id):
            mine = GitHistory(self.git_dir, ref)
            if mine.head() is not None:
                return mine
        return GitHistory(self.git_dir, "refs/heads/main")

    def _git(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        env = command_environment({"GIT_DIR": str(self.git_dir), "GIT_TERMINAL_PROMPT": "0"})
        return subprocess.run(
            ["git", *args],
            input=stdin,
            capture_output=True,
            env=env,
            timeout=_TIMEOUT_S,
            check=False,
        )

    def head(self) -> str | None:
        """The commit the branch points at; None when it does not exist."""
        done = self._git("rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}")
        return done.stdout.decode().strip() or None if done.returncode == 0 else None

    def contains(self, commit: str, head: str) -> bool:
        """Whether `commit` is `head` or one of its ancestors (an unknown commit is not)."""
        return self._git("merge-base", "--is-ancestor", commit, head).returncode == 0

    def commits(self, cr_id: str, trust: TrustPolicy | None) -> list[HistoryCommit]:
        """Every commit that changed the CR's record on the branch, newest first.

        Raises:
            IntegrityError: when git cannot read the repository.
        """
        path = f"{CHANGES_DIR}/{cr_id}.json"
        if self.head() is None:
            return []
        with tempfile.TemporaryDirectory(prefix="changeflow-signers-") as tmp:
            signers = Path(tmp) / "allowed_signers"
            signers.write_text(history_signers(trust) if trust else "", "utf-8")
            done = self._git(
                "-c",
                f"gpg.ssh.allowedSignersFile={signers}",
                "log",
                "-z",
                "--format=%H%x1f%cI%x1f%G?%x1f%GS",
                self.ref,
                "--",
                path,
            )
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise IntegrityError(f"cannot read the CR history: {why[-1] if why else 'git failed'}")
        rows = [r.strip("\n").split("\x1f") for r in done.stdout.decode().split("\0") if r.strip()]
        records = self._records([f"{sha}:{path}" for sha, *_ in rows])
        return [
            HistoryCommit(
                commit=sha,
                date=date,  # pydantic parses the ISO date
                status=status,
                signer=principal or None,
                record=_record(cr_id, record),
            )
            for (sha, date, status, principal), record in zip(rows, records, strict=True)
        ]

    def _records(self, names: list[str]) -> list[bytes | None]:
        """Read blobs by `<commit>:<path>` with one `cat-file --batch`; None when missing."""
        if not names:
            return []
        out = self._git("cat-file", "--batch", stdin="".join(f"{n}\n" for n in names).encode())
        found: list[bytes | None] = []
        data, pos = out.stdout, 0
        for _ in names:
            end = data.index(b"\n", pos)
            fields = data[pos:end].decode("utf-8", "replace").rsplit(" ", 2)
            pos = end + 1
            if len(fields) == 3 and fields[1] == "blob" and fields[2].isdigit():
                size = int(fields[2])
                found.append(data[pos : pos + size])
                pos += size + 1
            else:
                found.append(None)
        return found


def _record(cr_id: str, data: bytes | None) -> ChangeRequest | None:
    if data is None:
        return None
    try:
        cr = ChangeRequest.model_validate_json(data)
    except ValidationError:
        return None
    return cr if cr.id == cr_id else None
