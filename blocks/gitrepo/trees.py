"""Trees and blobs in the mirror: read many with one process, write a change's trees with two.

Split from `objects` (reads of refs, history and files) to keep each module small.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blocks.gitrepo.errors import GitError, check_path
from blocks.gitrepo.mirror import NETWORK_TIMEOUT, GitMirror

__all__ = ["Blob", "GitTrees", "TreeEntry"]

# A tree entry as `ls-tree` gives it: (mode, type, sha).
TreeEntry = tuple[str, str, str]


class Blob(str):
    """A blob already in the mirror, by its sha: written into a tree as it is, not hashed again."""

    __slots__ = ()


def _parse_tree(raw: bytes, hash_size: int) -> dict[str, TreeEntry]:
    """The entries of a tree object as `cat-file` gives it: `<mode> <name>\\0<binary sha>`."""
    entries: dict[str, TreeEntry] = {}
    pos = 0
    while pos < len(raw):
        space = raw.index(b" ", pos)
        nul = raw.index(b"\0", space)
        mode = raw[pos:space].decode()
        sha = raw[nul + 1 : nul + 1 + hash_size].hex()
        kind = "tree" if mode == "40000" else "commit" if mode == "160000" else "blob"
        entries[raw[space + 1 : nul].decode("utf-8", "replace")] = (mode.zfill(6), kind, sha)
        pos = nul + 1 + hash_size
    return entries


class GitTrees(GitMirror):
    """Reads objects in batches, and writes blobs and trees, in the mirror."""

    def __init__(
        self, url: str, cache_dir: Path | str, *, timeout: float = NETWORK_TIMEOUT
    ) -> None:
        super().__init__(url, cache_dir, timeout=timeout)
        self._empty_tree: str | None = None
        self._hash_bytes: int | None = None

    def _cat_batch(self, names: list[str]) -> list[tuple[str, bytes] | None]:
        """Read many objects with one `cat-file --batch`: (type, content) or None if missing."""
        if not names:
            return []
        out = self._run("cat-file", "--batch", stdin="".join(f"{n}\n" for n in names).encode())[1]
        results: list[tuple[str, bytes] | None] = []
        pos = 0
        for _ in names:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode("utf-8", "replace")
            pos = end + 1
            fields = header.rsplit(" ", 2)
            if len(fields) == 3 and fields[2].isdigit():
                size = int(fields[2])
                results.append((fields[1], out[pos : pos + size]))
                pos += size + 1  # the content is followed by a newline
            else:
                results.append(None)  # "<name> missing" or "<name> ambiguous"
        return results

    def read_trees(self, names: list[str]) -> list[dict[str, TreeEntry] | None]:
        """Read many trees (`<rev>:<path>` or shas) with one process; None where there is none.

        Lets a reader look into one folder of many branches without a process per branch.
        """
        found = self._cat_batch(names)
        trees: list[dict[str, TreeEntry] | None] = []
        for result in found:
            if result is None or result[0] != "tree":
                trees.append(None)
            else:
                trees.append(_parse_tree(result[1], self._hash_size()))
        return trees

    def read_blobs(self, shas: list[str]) -> list[bytes | None]:
        """Read many blobs by sha with one process; None where there is no such blob."""
        return [r[1] if r and r[0] == "blob" else None for r in self._cat_batch(shas)]

    def _hash_size(self) -> int:
        if self._hash_bytes is None:
            self._hash_bytes = len(self._empty()) // 2
        return self._hash_bytes

    def _ls_tree(self, tree: str) -> dict[str, TreeEntry]:
        out = self._run("ls-tree", "-z", tree)[1]
        entries: dict[str, TreeEntry] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, sha = meta.decode().split(" ")
            entries[name.decode("utf-8")] = (mode, kind, sha)
        return entries

    def _mktree(self, entries: dict[str, TreeEntry]) -> str:
        body = b"".join(
            f"{mode} {kind} {sha}\t{name}\0".encode() for name, (mode, kind, sha) in entries.items()
        )
        return self._text("mktree", "-z", stdin=body)

    def _hash_blobs(self, blobs: list[bytes]) -> list[str]:
        """Write blobs into the mirror with one `hash-object` process; return their shas."""
        if not blobs:
            return []
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".blobs-") as tmp:
            paths = []
            for i, data in enumerate(blobs):
                path = Path(tmp) / str(i)
                path.write_bytes(data)
                paths.append(str(path))
            out = self._text(
                "hash-object",
                "-w",
                "--no-filters",
                "--stdin-paths",
                stdin="\n".join(paths).encode(),
            )
        return out.split()

    def _build_tree(self, tree: str | None, node: dict[str, Any]) -> str | None:
        """Apply `node` (name → blob sha, None to delete, or a sub-node) to `tree`.

        Only the trees on changed paths are read and written, whatever their depth with two
        processes: one `cat-file --batch` reads them, one `mktree --batch` writes the new
        ones (their ids computed here, children first, and checked against git's). Returns
        None for an empty tree.
        """
        folders: list[tuple[str, ...]] = []

        def collect(sub: dict[str, Any], path: tuple[str, ...]) -> None:
            folders.append(path)
            for name, change in sub.items():
                if isinstance(change, dict):
                    collect(change, (*path, name))

        collect(node, ())
        read: dict[tuple[str, ...], dict[str, TreeEntry] | None] = {}
        if tree:
            names = [f"{tree}:{'/'.join(path)}" if path else tree for path in folders]
            read = dict(zip(folders, self.read_trees(names), strict=True))
        batch: list[bytes] = []
        expected: list[str] = []

        def build(sub: dict[str, Any], path: tuple[str, ...], own: str | None) -> str | None:
            before = (read.get(path) or {}) if own else {}
            entries = dict(before)
            for name, change in sub.items():
                current = entries.get(name)
                if isinstance(change, dict):
                    child = current[2] if current and current[1] == "tree" else None
                    new = build(change, (*path, name), child)
                    if new is None:
                        entries.pop(name, None)
                    else:
                        entries[name] = ("040000", "tree", new)
                elif change is None:
                    entries.pop(name, None)
                else:
                    mode = current[0] if current and current[1] == "blob" else "100644"
                    entries[name] = (mode, "blob", change)
            if not entries:
                return None
            if own and entries == before:
                return own
            sha = self._tree_id(entries)
            listing = (f"{m} {k} {h}\t{n}\0" for n, (m, k, h) in entries.items())
            batch.append("".join(listing).encode())
            expected.append(sha)
            return sha

        root = build(node, (), tree)
        if batch:
            out = self._text("mktree", "-z", "--batch", stdin=b"\0".join(batch))
            if out.split() != expected:
                raise GitError("git wrote other trees than were computed")
        return root

    def _tree_id(self, entries: dict[str, TreeEntry]) -> str:
        """The object id git gives a tree of these entries (sorted as git sorts them)."""
        ordered = sorted(
            entries.items(), key=lambda e: e[0].encode() + (b"/" if e[1][1] == "tree" else b"")
        )
        body = b"".join(
            f"{mode.lstrip('0')} {name}".encode() + b"\0" + bytes.fromhex(sha)
            for name, (mode, _, sha) in ordered
        )
        algorithm = "sha1" if self._hash_size() == 20 else "sha256"
        return hashlib.new(algorithm, b"tree %d\0" % len(body) + body).hexdigest()

    def _write_tree(self, base: str | None, changes: Mapping[str, bytes | Blob | None]) -> str:
        """Write the tree of `base` with `changes` applied (path → content or `Blob`, None
        deletes)."""
        written = [
            (p, d) for p, d in sorted(changes.items()) if d is not None and not isinstance(d, Blob)
        ]
        shas: dict[str, str] = dict(
            zip([p for p, _ in written], self._hash_blobs([d for _, d in written]), strict=True)
        )
        shas.update({p: str(d) for p, d in changes.items() if isinstance(d, Blob)})
        root: dict[str, Any] = {}
        for path in sorted(changes):
            parts = check_path(path)
            node = root
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"{path!r} is below the file {part!r} written too")
                node = child
            if isinstance(node.get(parts[-1]), dict):
                raise ValueError(f"{path!r} is written both as a file and as a folder")
            node[parts[-1]] = shas.get(path)
        return self._build_tree(base, root) or self._empty()

    def _empty(self) -> str:
        if self._empty_tree is None:
            self._empty_tree = self._mktree({})
        return self._empty_tree
