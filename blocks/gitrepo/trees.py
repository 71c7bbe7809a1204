"""Trees and blobs in the mirror: read many with one process, written with none.

A commit's new blobs and trees are written here, in Python, as git itself would write them
(`blocks.gitrepo.packs`: one pack for many), instead of a `hash-object` and a `mktree` process
per commit. Split from `objects` (reads of refs, history and files) to keep each module small.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blocks.gitrepo.errors import GitError, check_path
from blocks.gitrepo.mirror import NETWORK_TIMEOUT, GitMirror
from blocks.gitrepo.packs import LOOSE_AT_MOST, object_id, write_loose, write_pack

__all__ = ["Blob", "GitTrees", "TreeEntry"]

# A tree entry as `ls-tree` gives it: (mode, type, sha).
TreeEntry = tuple[str, str, str]


class Blob(str):
    """A blob already in the mirror, by its sha: written into a tree as it is, not hashed again."""

    __slots__ = ()


_ENTRY = {size: re.compile(rb"(\d+) ([^\0]*)\0(.{%d})" % size, re.S) for size in (20, 32)}


def _kind(mode: bytes) -> tuple[str, str]:
    text = mode.decode().zfill(6)
    return text, "tree" if text == "040000" else "commit" if text == "160000" else "blob"


_KINDS = {mode: _kind(mode) for mode in (b"40000", b"100644", b"100755", b"120000", b"160000")}


def _parse_tree(raw: bytes, hash_size: int) -> dict[str, TreeEntry]:
    """The entries of a tree object as `cat-file` gives it: `<mode> <name>\\0<binary sha>`
    (a regular expression walks them: a big folder is parsed at C speed)."""
    entries: dict[str, TreeEntry] = {}
    size = 0
    for mode, name, sha in _ENTRY[hash_size].findall(raw):
        known = _KINDS.get(mode) or _kind(mode)
        entries[name.decode("utf-8", "replace")] = (known[0], known[1], sha.hex())
        size += len(mode) + len(name) + 2 + hash_size
    if size != len(raw):
        raise GitError("a tree object that does not parse")
    return entries


def _tree_body(entries: dict[str, TreeEntry]) -> bytes:
    """A tree object's body: `<mode> <name>\\0<binary sha>` per entry, sorted as git sorts them
    (a folder as if its name ended in "/"); mode "40000" for folders, without a leading 0."""
    items = [
        ((f"{name}/" if kind == "tree" else name).encode(), f"{mode.lstrip('0')} {name}\0", sha)
        for name, (mode, kind, sha) in entries.items()
    ]
    items.sort(key=lambda item: item[0])
    return b"".join(head.encode() + bytes.fromhex(sha) for _, head, sha in items)


class GitTrees(GitMirror):
    """Reads objects in batches, and writes blobs and trees, in the mirror."""

    def __init__(
        self, url: str, cache_dir: Path | str, *, timeout: float = NETWORK_TIMEOUT
    ) -> None:
        super().__init__(url, cache_dir, timeout=timeout)
        self._algorithm: str | None = None

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
        return hashlib.new(self._hash_name()).digest_size

    def _hash_name(self) -> str:
        """The mirror's object format: sha1, or sha256 where `extensions.objectFormat` says so."""
        if self._algorithm is None:
            with self._repo.config_reader("repository") as config:
                name = str(config.get_value("extensions", "objectformat", "sha1"))
            self._algorithm = "sha256" if name.lower() == "sha256" else "sha1"
        return self._algorithm

    def _object_id(self, kind: str, body: bytes) -> str:
        """The id git gives an object of this type and body."""
        return object_id(self._hash_name(), kind, body)

    def _store(self, objects: Mapping[str, tuple[str, bytes]]) -> None:
        """Write objects (id → (type, body)) into the mirror: a few loose, more as one pack."""
        folder = self.path / "objects"
        if len(objects) <= LOOSE_AT_MOST:
            for sha, (kind, body) in objects.items():
                write_loose(folder, sha, kind, body)
        else:
            listed = [(sha, kind, body) for sha, (kind, body) in objects.items()]
            write_pack(folder, self._hash_name(), listed)

    def _write_objects(self, kind: str, bodies: list[bytes]) -> list[str]:
        """Write objects of one type into the mirror; return their ids."""
        shas = [self._object_id(kind, body) for body in bodies]
        self._store({sha: (kind, body) for sha, body in zip(shas, bodies, strict=True)})
        return shas

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

    def _hash_blobs(self, blobs: list[bytes]) -> list[str]:
        """Write blobs into the mirror (no process); return their shas."""
        return self._write_objects("blob", blobs)

    def _build_tree(
        self, tree: str | None, node: dict[str, Any], batch: dict[str, tuple[str, bytes]]
    ) -> str | None:
        """Apply `node` (name → blob sha, None to delete, or a sub-node) to `tree`.

        Only the trees on changed paths are read and made, whatever their depth: one
        `cat-file --batch` reads them, and the new ones are added to `batch`, children first,
        for the caller to write. Returns None for an empty tree.
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
            body = _tree_body(entries)
            sha = self._object_id("tree", body)
            batch[sha] = ("tree", body)
            return sha

        return build(node, (), tree)

    def _write_tree(self, base: str | None, changes: Mapping[str, bytes | Blob | None]) -> str:
        """Write the tree of `base` with `changes` applied (path → content or `Blob`, None
        deletes): its new blobs and trees, all at once."""
        batch: dict[str, tuple[str, bytes]] = {}
        ids: dict[bytes, str] = {}  # each distinct content hashed once (index entries repeat)
        shas: dict[str, str] = {}
        for path, data in changes.items():
            if isinstance(data, Blob):
                shas[path] = str(data)
            elif data is not None:
                if (sha := ids.get(data)) is None:
                    sha = ids[data] = self._object_id("blob", data)
                    batch[sha] = ("blob", data)
                shas[path] = sha
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
        tree = self._build_tree(base, root, batch)
        self._store(batch)
        return tree or self._empty()

    def _empty(self) -> str:
        return self._write_objects("tree", [b""])[0]
