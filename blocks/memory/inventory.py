"""The inventory in memory: commits of files on branches, labels, promotions.

It is shaped like the git inventory it stands in for: each write is a commit holding every file
(the entries' JSON and `.promotion.json`), branches and labels point at commits, and a promotion
travels on `promotion/<target>/<id>` until it is merged. What is an entry, what a delta holds,
which entries a promotion carries and every commit message are the domain's rules
(`changeflow.inventory_rules`, `changeflow.delta`), the same the git inventory follows.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from changeflow.delta import Delta, compute_delta, select_promotion_changes
from changeflow.delta_origins import Origins, trace_origins
from changeflow.errors import BadInput
from changeflow.inventory_rules import (
    IGNORE_FILE,
    MASTER,
    PROMOTION_FILE,
    REAPPLIED,
    InventoryCheck,
    check_entries,
    check_promotion_target,
    clash_problem,
    entry_files,
    entry_folders,
    find_promotion,
    is_entry_path,
    parse_entry,
    parse_ignore,
    parse_promotion,
    promotion_branch,
    promotion_message,
    record_message,
    refuse_ignored,
    types_in,
)
from changeflow.labels import check_ref_name
from changeflow.models import InventoryEntry, Promotion, validate_entry_name

__all__ = ["MemoryInventory"]


@dataclass(frozen=True)
class _Commit:
    id: str
    parent: str | None
    files: Mapping[str, bytes]
    message: str

    def entry_names(self) -> list[str]:
        ignore = parse_ignore(self.files.get(IGNORE_FILE))
        return sorted(p for p in self.files if is_entry_path(p, ignore))

    def entries(self) -> dict[str, InventoryEntry]:
        return {n: parse_entry(n, self.files[n], self.id) for n in self.entry_names()}


def _ref_name(name: str, what: str) -> str:
    try:
        return check_ref_name(name)
    except ValueError as exc:
        raise BadInput(f"{what}: {exc}") from None


class MemoryInventory:
    """Inventory entries per branch, promotions and labels, held in memory.

    Every method holds one lock for its whole work, so each write is an atomic
    compare-and-swap on the refs it moves, as the git inventory's pushes are.
    """

    def __init__(self) -> None:
        self._commits: dict[str, _Commit] = {}
        self._branches: dict[str, str] = {}
        self._labels: dict[str, str] = {}
        self._lock = threading.RLock()

    # -- commits and refs -----------------------------------------------------------------

    def _commit(
        self, branch: str, files: Mapping[str, bytes], message: str, parent: str | None
    ) -> str:
        """Point `branch` at a new commit of `files` on `parent`; the parent when unchanged."""
        if parent is not None and dict(self._commits[parent].files) == dict(files):
            self._branches[branch] = parent
            return parent
        commit = _Commit(secrets.token_hex(20), parent, dict(files), message)
        self._commits[commit.id] = commit
        self._branches[branch] = commit.id
        return commit.id

    def _find(self, ref: str) -> str | None:
        if ref.startswith("refs/heads/"):
            return self._branches.get(ref.removeprefix("refs/heads/"))
        if ref.startswith("refs/tags/"):
            return self._labels.get(ref.removeprefix("refs/tags/"))
        # as git resolves a short name: a label before a branch, then a commit
        found = self._labels.get(ref) or self._branches.get(ref)
        return found or (ref if ref in self._commits else None)

    def _resolved(self, ref: str) -> _Commit:
        found = self._find(ref)
        if found is None:
            raise BadInput(f"unknown inventory branch, tag or commit: {ref}")
        return self._commits[found]

    def _is_ancestor(self, older: str, newer: str | None) -> bool:
        while newer is not None:
            if newer == older:
                return True
            newer = self._commits[newer].parent
        return False

    # -- entries --------------------------------------------------------------------------

    def resolve(self, ref: str) -> str | None:
        """The commit a branch, label or commit names, or None."""
        with self._lock:
            return self._find(ref)

    def entries(self, ref: str) -> dict[str, InventoryEntry]:
        """Every entry at a ref.

        Raises:
            BadInput: when `ref` does not exist.
            IntegrityError: when a file that should be an entry does not parse as one.
        """
        with self._lock:
            return self._resolved(ref).entries()

    def get(self, name: str, ref: str) -> InventoryEntry | None:
        """One entry at a ref, or None when it is not there.

        Raises:
            BadInput: when `ref` does not exist or `name` cannot be an entry name.
        """
        try:
            validate_entry_name(name)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        with self._lock:
            commit = self._resolved(ref)
        if name not in commit.entry_names():
            return None
        return parse_entry(name, commit.files[name], commit.id)

    def add_entries(
        self, entries: list[InventoryEntry], branch: str = MASTER, message: str | None = None
    ) -> str | None:
        """Record entries on a branch in one commit; the new head (the same when unchanged).

        Raises:
            BadInput: for a bad branch name, a name given twice, one that clashes with a file
                or folder, or one that `.inventoryignore` on the branch ignores.
        """
        _ref_name(branch, "inventory branch")
        written = entry_files(entries)
        names = sorted(written)
        with self._lock:
            parent = self._branches.get(branch)
            if not entries:
                return parent
            files = dict(self._commits[parent].files) if parent else {}
            clash = clash_problem(names, types_in(files, [*names, *entry_folders(names)]))
            if clash is not None:
                raise BadInput(clash)
            refuse_ignored(names, parse_ignore(files.get(IGNORE_FILE)), branch)
            text = message or record_message(names)
            return self._commit(branch, {**files, **written}, text, parent)

    def remove_entries(
        self, names: list[str], branch: str = MASTER, message: str | None = None
    ) -> str:
        """Delete entries from `branch` in one commit; its head after (the same when none was
        there).

        Raises:
            BadInput: for a bad branch or entry name, or a branch that does not exist.
        """
        _ref_name(branch, "inventory branch")
        try:
            gone = sorted({validate_entry_name(name) for name in names})
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        with self._lock:
            head = self._resolved(f"refs/heads/{branch}")
            present = [n for n in gone if n in head.entry_names()]
            files = {p: data for p, data in head.files.items() if p not in present}
            text = message or f"inventory: remove {', '.join(gone)}"
            return self._commit(branch, files, text, head.id)

    def delta(self, from_ref: str | None, to_ref: str) -> Delta:
        """What changed from `from_ref` (None or missing: nothing) to `to_ref`.

        Raises:
            BadInput: when `to_ref` does not exist.
        """
        with self._lock:
            after = self._resolved(to_ref)
            base = self._find(from_ref) if from_ref else None
            before = self._commits[base] if base else None
        return compute_delta(before.entries() if before else {}, after.entries())

    def validate(self, ref: str) -> InventoryCheck:
        """Check every file that should be an entry at a ref, naming each bad one.

        Raises:
            BadInput: when `ref` does not exist.
        """
        with self._lock:
            commit = self._resolved(ref)
        return check_entries(commit.id, {n: commit.files[n] for n in commit.entry_names()})

    # -- promotions -----------------------------------------------------------------------

    def promotion(self, ref: str) -> Promotion | None:
        """The promotion recorded at a ref: on an environment, the last one merged into it."""
        with self._lock:
            found = self._find(ref)
        commit = self._commits[found] if found else None
        data = commit.files.get(PROMOTION_FILE) if commit else None
        return None if commit is None or data is None else parse_promotion(data, commit.id)

    def origins(self, from_ref: str | None, to_ref: str, names: list[str]) -> Origins:
        """How each of `names` reached `to_ref` since `from_ref`: commit, promotion (if any).

        Raises:
            BadInput: when `to_ref` does not exist.
        """
        with self._lock:
            commit: _Commit | None = self._resolved(to_ref)
            base = self._find(from_ref) if from_ref else None
            history = []  # newest first; every write here has one parent
            while commit is not None and commit.id != base:
                before = self._commits[commit.parent].files if commit.parent else {}
                changed = {
                    p for p in {*before, *commit.files} if before.get(p) != commit.files.get(p)
                }
                history.append((commit.id, changed))
                commit = self._commits[commit.parent] if commit.parent else None

        def read(commit_id: str) -> Promotion | None:
            data = self._commits[commit_id].files.get(PROMOTION_FILE)
            return None if data is None else parse_promotion(data, commit_id)

        return trace_origins(history, names, read)

    def promotable(
        self,
        source: str,
        target: str,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> list[str]:
        """The entry names a promotion from `source` to `target` would carry, sorted.

        Raises:
            BadInput: for an unknown source or a target that cannot be promoted to.
            NotReady: when nothing differs.
        """
        with self._lock:
            return self._select(source, target, include or [], exclude or [])[0]

    def _select(
        self,
        source: str,
        target: str,
        include: list[str],
        exclude: list[str],
        promotion_id: str | None = None,
    ) -> tuple[list[str], _Commit, str | None, list[str]]:
        """(entry names, source commit, target head or None, names to delete) of a promotion
        (lock held)."""
        _ref_name(target, "promotion target")
        check_promotion_target(source, target)
        src = self._resolved(source)
        tgt = self._branches.get(target)
        if promotion_id is not None and promotion_branch(target, promotion_id) in self._branches:
            raise BadInput(f"promotion {promotion_id} to {target} is already open")
        differing, gone = src.entry_names(), []
        if tgt is not None:
            # what the target lacks or holds otherwise, and what it holds the source no longer does
            there = self._commits[tgt]
            differing = [n for n in differing if there.files.get(n) != src.files[n]]
            ignore = parse_ignore(src.files.get(IGNORE_FILE))  # as git reads the diff
            gone = sorted(p for p in there.files if p not in src.files and is_entry_path(p, ignore))
        names, removed = select_promotion_changes(
            differing, gone, include, exclude, source=source, target=target
        )
        return names, src, tgt, removed

    def promote(self, promotion: Promotion, merge: bool = True) -> Promotion:
        """Open a promotion on `promotion/<target>/<id>` and, unless reviewed, merge it.

        Raises:
            BadInput: for an unknown source, a bad target or a promotion id already open.
            NotReady: when nothing differs.
        """
        with self._lock:
            names, src, tgt, removed = self._select(
                promotion.source, promotion.target, promotion.include, promotion.exclude,
                promotion.id,
            )  # fmt: skip
            record = Promotion.model_validate(
                {**promotion.model_dump(), "entries": names, "source_commit": src.id,
                 "deletions": removed}
            )  # fmt: skip
            files = dict(self._commits[tgt].files) if tgt else {}
            files.update({n: src.files[n] for n in names})
            for name in removed:
                del files[name]
            files[PROMOTION_FILE] = record.to_json() + b"\n"
            branch = promotion_branch(record.target, record.id)
            self._commit(branch, files, promotion_message(record), tgt)
            if merge:
                self.merge_promotion(record.id)
        return record

    def merge_promotion(self, promotion_id: str) -> str:
        """Merge a promotion left open for review; the target's new head.

        A target that moved since the promotion opened gets the promotion's files on its new
        head, so history stays linear.

        Raises:
            BadInput: for an unknown (or ambiguous) promotion id.
        """
        with self._lock:
            branch, target = find_promotion(list(self._branches), promotion_id)
            head = self._commits[self._branches.pop(branch)]
            current = self._branches.get(target)
            if current is None or self._is_ancestor(current, head.id):
                self._branches[target] = head.id
                return head.id
            record = parse_promotion(head.files[PROMOTION_FILE], head.id)
            files = dict(self._commits[current].files)
            files.update({n: head.files[n] for n in [*record.entries, PROMOTION_FILE]})
            for name in record.deletions:
                files.pop(name, None)  # already gone on the moved target: nothing to delete
            return self._commit(target, files, head.message + REAPPLIED, current)

    # -- labels ---------------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        """Every label and the commit it points at."""
        with self._lock:
            return dict(sorted(self._labels.items()))

    def add_label(self, label: str, ref: str) -> str:
        """Create a label at a ref; the commit it points at.

        Raises:
            BadInput: for a bad or existing label name, a branch of that name, an unknown ref.
        """
        _ref_name(label, "label")
        with self._lock:
            if label in self._branches:
                raise BadInput(f"label {label} would be hidden by the branch of the same name")
            commit = self._resolved(ref).id
            existing = self._labels.get(label)
            if existing is not None:
                raise BadInput(
                    f"label {label} already exists (at {existing[:12]}); move it instead"
                )
            self._labels[label] = commit
            return commit

    def move_labels(self, labels: list[str], ref: str) -> str:
        """Point labels at a ref, creating missing ones, all or none; the commit they point at.

        Raises:
            BadInput: for a bad label name, a new label hidden by a branch, an unknown ref.
        """
        for label in labels:
            _ref_name(label, "label")
        with self._lock:
            for label in labels:
                if label not in self._labels and label in self._branches:
                    raise BadInput(f"label {label} would be hidden by the branch of the same name")
            commit = self._resolved(ref).id
            self._labels.update(dict.fromkeys(labels, commit))
            return commit

    def delete_label(self, label: str) -> str:
        """Delete a label; the commit it pointed at.

        Raises:
            BadInput: for a bad or unknown label.
        """
        _ref_name(label, "label")
        with self._lock:
            commit = self._labels.pop(label, None)
        if commit is None:
            raise BadInput(f"unknown label {label}")
        return commit
