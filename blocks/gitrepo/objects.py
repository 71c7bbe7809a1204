"""Git objects in the mirror: reading refs, trees, blobs and history; writing blobs and trees.

Reads see the mirror as of the last fetch and take no lock: git objects never change and refs
are updated atomically. Many objects are read with one `cat-file --batch` process, and a tree
is rewritten only along the paths that changed, so costs follow the change, not the tree.
"""

from __future__ import annotations

import re
from pathlib import Path

from blocks.gitrepo.errors import UnknownRef, full_ref
from blocks.gitrepo.mirror import NETWORK_TIMEOUT
from blocks.gitrepo.trees import Blob, GitTrees, TreeEntry
from changeflow.ports import Commit

__all__ = ["Blob", "GitObjects", "TreeEntry"]

_HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")
_LOG_FORMAT = "--format=%H%x1f%an <%ae>%x1f%aI%x1f%B"


def _usable(paths: list[str]) -> list[str]:
    """The distinct paths that can be named on a batch line (no line breaks, no NUL)."""
    return [p for p in dict.fromkeys(paths) if p and not any(c in p for c in "\n\r\0")]


class GitObjects(GitTrees):
    """Reads refs, trees, blobs and history from the mirror, and writes blobs and trees to it."""

    def __init__(
        self, url: str, cache_dir: Path | str, *, timeout: float = NETWORK_TIMEOUT
    ) -> None:
        super().__init__(url, cache_dir, timeout=timeout)
        self._known_commits: set[str] = set()

    # ----------------------------------------------------------------------------- plumbing

    def refs(self, prefix: str) -> dict[str, str]:
        """Return full ref name → object sha of the mirror's refs under `prefix` (as fetched)."""
        out = self._text("for-each-ref", "--format=%(refname)%09%(objectname)", prefix)
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def _peel_pairs(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        """Peel each (name, kind) to an object of that kind with one process; None if not."""
        found = self._run(
            "cat-file",
            "--batch-check=%(objectname) %(objecttype)",
            stdin="".join(f"{name}^{{{kind}}}\n" for name, kind in pairs).encode(),
        )[1].decode()
        shas: list[str | None] = []
        for (_, kind), line in zip(pairs, found.splitlines(), strict=True):
            sha, _, got = line.rpartition(" ")
            shas.append(sha if got == kind else None)
        return shas

    def _head_and_tree(self, ref: str) -> tuple[str | None, str | None]:
        """The commit a full ref points at and its tree, with one process."""
        commit, tree = self._peel_pairs([(ref, "commit"), (ref, "tree")])
        return commit, tree if commit else None

    def _ref_value(self, ref: str) -> str | None:
        """The raw value of a full ref in the mirror (a tag object for annotated tags)."""
        status, out, _ = self._run("rev-parse", "--verify", "--quiet", ref, check=False)
        return out.decode().strip() if status == 0 else None

    def _commit_of(self, ref: str) -> str:
        # A commit sha seen before needs no process: reads inside `commit` stay cheap.
        if ref in self._known_commits:
            return ref
        sha = self.resolve(ref)
        if sha is None:
            raise UnknownRef(f"unknown ref {ref!r}")
        self._remember(sha)
        return sha

    def _remember(self, sha: str) -> None:
        if len(self._known_commits) > 4096:
            self._known_commits.clear()
        self._known_commits.add(sha)

    # ------------------------------------------------------------------------------- reads

    def resolve(self, ref: str) -> str | None:
        """Return the commit sha of a branch, tag, full ref or commit, or None if missing.

        Branches win over tags of the same name. Looks at the mirror as last fetched.
        """
        if not ref or any(c in ref for c in "\n\r\0"):
            return None
        candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        if _HEX_RE.match(ref):
            candidates.append(ref)
        found = self._peel_pairs([(name, "commit") for name in candidates])
        return next((sha for sha in found if sha), None)

    def ref_value(self, ref: str) -> str | None:
        """Return what a full ref holds in the mirror (a tag object for annotated tags), or None.

        This is the value a compare-and-swap (`set_ref`, `delete_ref`) expects.
        """
        return self._ref_value(full_ref(ref))

    def branches(self) -> list[str]:
        """Return the branch names in the mirror, sorted."""
        out = self._text("for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/")
        return sorted(out.splitlines())

    def tags(self) -> dict[str, str]:
        """Return tag name → commit sha (annotated tags peeled)."""
        out = self._run(
            "for-each-ref",
            "--format=%(refname:lstrip=2)%09%(objectname)%09%(*objectname)",
            "refs/tags/",
        )[1].decode("utf-8")
        tags = {}
        for line in out.splitlines():
            name, sha, peeled = line.split("\t")
            tags[name] = peeled or sha
        return tags

    def tree_of(self, ref: str) -> str:
        """Return the tree sha of a commit, branch or tag."""
        return self._text("rev-parse", "--verify", f"{self._commit_of(ref)}^{{tree}}")

    def list_files(self, ref: str, prefix: str | None = None) -> dict[str, str]:
        """Return path → blob sha of every file at `ref` (only under folder `prefix` if given).

        Raises:
            UnknownRef: when `ref` does not resolve.
        """
        args = ["ls-tree", "-r", "-z", "--full-tree", self._commit_of(ref)]
        if prefix:
            args += ["--", prefix.rstrip("/") + "/"]
        files = {}
        for record in self._run(*args)[1].split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            _, kind, sha = meta.decode().split(" ")
            if kind == "blob":
                files[path.decode("utf-8")] = sha
        return files

    def read_files(self, ref: str, paths: list[str] | None = None) -> dict[str, bytes]:
        """Return path → content for `paths` at `ref` (every file when None); missing are left out.

        One `cat-file --batch` reads them all; with `paths` given the tree is not listed, so
        the cost follows the number of paths.

        Raises:
            UnknownRef: when `ref` does not resolve.
        """
        commit = self._commit_of(ref)
        if paths is None:
            listing = self.list_files(commit)
            names, objects = list(listing), list(listing.values())
        else:
            names = _usable(paths)
            objects = [f"{commit}:{p}" for p in names]
        found = self._cat_batch(objects)
        return {n: r[1] for n, r in zip(names, found, strict=True) if r and r[0] == "blob"}

    def diff(self, from_ref: str | None, to_ref: str) -> tuple[list[str], list[str], list[str]]:
        """Return (modified, added, deleted) paths from `from_ref` to `to_ref`, each sorted.

        `from_ref` None means an empty tree: everything at `to_ref` is added. A tree diff skips
        identical subtrees, so the cost follows the changes, not the size of the tree.

        Raises:
            UnknownRef: when a ref does not resolve.
        """
        to = self._commit_of(to_ref)
        if from_ref is None:
            return [], sorted(self.list_files(to)), []
        base = self._commit_of(from_ref)
        out = self._run("diff-tree", "-r", "-z", "--no-renames", base, to)[1]
        modified: list[str] = []
        added: list[str] = []
        deleted: list[str] = []
        tokens = out.split(b"\0")
        for meta, path in zip(tokens[::2], tokens[1::2], strict=False):
            status = meta.decode().rsplit(" ", 1)[-1][:1]
            name = path.decode("utf-8")
            {"A": added, "D": deleted}.get(status, modified).append(name)
        return sorted(modified), sorted(added), sorted(deleted)

    def log(
        self,
        ref: str,
        path: str | None = None,
        since: str | None = None,
        *,
        exclude: str | None = None,
        max_count: int | None = None,
    ) -> list[Commit]:
        """Return the commits reachable from `ref`, newest first, for audit trails.

        Args:
            ref: branch, tag or commit (unknown: an empty list).
            path: only commits touching this path.
            since: only commits after this date (anything `git log --since` accepts).
            exclude: leave out commits reachable from this ref (`exclude..ref`).
            max_count: at most this many commits.

        Returns:
            Each commit's sha, author ("name <email>"), date (ISO 8601) and message.
        """
        head = self.resolve(ref)
        if head is None:
            return []
        args = ["log", "-z", _LOG_FORMAT, head]
        if exclude is not None and (base := self.resolve(exclude)):
            args.append(f"^{base}")
        if since:
            args.append(f"--since={since}")
        if max_count is not None:
            args.append(f"--max-count={max_count}")
        if path:
            args += ["--", path]
        return self._commits(args)

    def commits_between(self, tips: list[str], bases: list[str]) -> list[Commit]:
        """Return the commits reachable from any of `tips` and from none of `bases`, newest
        first, with one process."""
        if not tips:
            return []
        return self._commits(["log", "-z", _LOG_FORMAT, *tips, *(f"^{b}" for b in bases), "--"])

    def changed_paths(
        self, head: str, base: str | None, paths: list[str]
    ) -> list[tuple[str, set[str]]]:
        """Return (commit, which of `paths` it changed), newest first, for the first-parent
        history of `head` since `base` (a merge against its first parent); `paths` are literal
        paths, never globs, and only commits changing one of them are listed."""
        args = ["log", "--first-parent", "--diff-merges=first-parent", "--name-only", "-z",
                "--format=%x1e%H", "--stdin", head, *([f"^{base}"] if base else [])]  # fmt: skip
        listed = "".join(f"{p}\n" for p in _usable(paths))
        literal = {"GIT_LITERAL_PATHSPECS": "1"}
        out = self._run(*args, stdin=f"--\n{listed}".encode(), env=literal)[1]
        history = []
        for record in out.decode("utf-8", "replace").split("\x1e")[1:]:
            sha, *changed = [token.strip("\n") for token in record.split("\0")]
            history.append((sha.strip(), {c for c in changed if c}))
        return history

    def _commits(self, args: list[str]) -> list[Commit]:
        commits = []
        for record in self._run(*args)[1].decode("utf-8", "replace").split("\0"):
            if record.strip():
                sha, author, date, message = record.lstrip("\n").split("\x1f", 3)
                commits.append(
                    Commit(commit=sha, author=author, date=date, message=message.strip())
                )
        return commits

    def path_types(self, ref: str, paths: list[str]) -> dict[str, str]:
        """Return path → object type ("blob", "tree") for those of `paths` present at `ref`."""
        commit = self._commit_of(ref)
        names = _usable(paths)
        if not names:
            return {}
        out = self._run(
            "cat-file",
            "--batch-check=%(objecttype)",
            stdin="".join(f"{commit}:{p}\n" for p in names).encode(),
        )[1].decode("utf-8", "replace")
        found = {}
        for path, line in zip(names, out.splitlines(), strict=True):
            if not line.endswith((" missing", " ambiguous")):
                found[path] = line.strip()
        return found

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Tell whether commit `ancestor` is reachable from `descendant`."""
        status = self._run("merge-base", "--is-ancestor", ancestor, descendant, check=False)[0]
        return status == 0

    def parents(self, ref: str) -> list[str]:
        """Return the parent commits of a commit."""
        out = self._text("rev-list", "--parents", "-n", "1", self._commit_of(ref))
        return out.split()[1:]
