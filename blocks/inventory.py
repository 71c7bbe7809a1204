"""The inventory block: one JSON file per built artifact in a bare git remote.

Branch `master` is written by CI, one branch per environment holds what was promoted there,
promotions travel on `promotion/<target>/<id>` branches carrying `.promotion.json`, and tags
`<env>_latest` / `<region>_<env>_latest` mark what is deployed. Every method fetches first.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, HttpUrl, PrivateAttr, ValidationError

from blocks.git_store import GitRemote, RefConflict, check_ref_name, default_cache_dir
from blocks.pull_requests import PullRequest, PullRequestProvider
from changeflow.delta import Delta, select_entries
from changeflow.errors import BadInput, IntegrityError, NotReady
from changeflow.models import InventoryEntry, Promotion, validate_entry_name
from changeflow.settings import Settings

__all__ = [
    "IGNORE_FILE",
    "MASTER",
    "PROMOTION_FILE",
    "BadEntry",
    "GitInventory",
    "is_entry_path",
    "parse_ignore",
]

MASTER = "master"
PROMOTION_FILE = ".promotion.json"
IGNORE_FILE = ".inventoryignore"
_PROMOTION_PREFIX = "promotion/"


def parse_ignore(text: bytes | None) -> list[str]:
    """Return the globs of an `.inventoryignore` file (blank lines and `#` comments skipped)."""
    if not text:
        return []
    lines = (line.strip() for line in text.decode("utf-8", "replace").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_entry_path(path: str, ignore: list[str] | None = None) -> bool:
    """Tell whether a file in the inventory is an entry.

    Hidden files (any part starting with "."), Markdown files and paths matching an ignore
    glob are not. A glob matches the path or any of its folders; one without "/" also matches
    a single name at any depth (like `.gitignore`).
    """
    parts = path.split("/")
    if any(part.startswith(".") for part in parts) or path.endswith(".md"):
        return False
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in ignore or []:
        glob = raw.strip("/")
        candidates = prefixes if "/" in raw.rstrip("/") else prefixes + parts
        if glob and any(fnmatchcase(candidate, glob) for candidate in candidates):
            return False
    return True


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def _names_line(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


class BadEntry(BaseModel):
    """A file in the inventory that should be an entry and is not a valid one.

    Attributes:
        name: its path in the inventory.
        problem: what is wrong, on one line.
    """

    name: str
    problem: str


def _problem(path: str, data: bytes) -> str | None:
    """What is wrong with the raw file `path` as an inventory entry, or None."""
    try:
        validate_entry_name(path)
    except ValueError as exc:
        return str(exc)
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(raw, dict):
        return f"not a JSON object but {type(raw).__name__}"
    try:
        entry = InventoryEntry.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ())) or 'record'}: {err['msg']}"
            for err in exc.errors()
        ]
        return "; ".join(problems)
    if entry.name != path:
        return f"names itself {entry.name!r}"
    return None


class GitInventory(Block):
    """The inventory: a bare git remote holding one JSON file per built artifact.

    Attributes:
        remote_url: git URL of the bare inventory remote.
        cache_dir: folder for the local mirror; default `$CHANGEFLOW_HOME/repos`.
        pull_requests: where a promotion left for review is also opened as a pull request
            (GitHub) or merge request (GitLab); None (the default) opens none.

    Example:
        ```python
        from blocks.inventory import GitInventory

        inventory = GitInventory.load("inventory")
        delta = inventory.delta("us-south_prod_latest", "prod")
        ```
    """

    _block_type_name = "changeflow Inventory"
    _block_type_slug = "changeflow-inventory"
    _logo_url = HttpUrl(
        "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
    )
    _documentation_url = HttpUrl("https://docs.prefect.io/v3/develop/blocks")
    _code_example = """
    ```python
    from blocks.inventory import GitInventory

    inventory = GitInventory.load("BLOCK_NAME")
    entries = inventory.entries("prod")
    inventory.move_label("us-south_prod_latest", "prod")
    ```
    """
    _description = (
        "The changeflow inventory: a git remote with one JSON file per built artifact, a branch "
        "per environment, promotion branches and deployed-state tags."
    )

    remote_url: str = Field(description="git URL of the bare inventory remote.")
    cache_dir: str | None = Field(
        default=None, description="Local mirror folder (default: $CHANGEFLOW_HOME/repos)."
    )
    pull_requests: PullRequestProvider | None = Field(
        default=None,
        description="Open promotions left for review as GitHub pull requests or GitLab merge "
        "requests (off when empty).",
    )

    _remote: GitRemote | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> GitInventory:
        """Build the block from `CHANGEFLOW_INVENTORY_URL` (its mirror under `CHANGEFLOW_HOME`).

        Raises:
            BadInput: when `CHANGEFLOW_INVENTORY_URL` is not set.
        """
        return cls(remote_url=Settings.from_env().require("inventory_url"))

    # ----------------------------------------------------------------------------- helpers

    @property
    def git(self) -> GitRemote:
        """The `GitRemote` this block reads and writes through (made on first use)."""
        if self._remote is None:
            cache = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
            self._remote = GitRemote(self.remote_url, cache)
        return self._remote

    def _fetched(self) -> GitRemote:
        git = self.git
        git.fetch()
        return git

    def _commit(self, ref: str) -> str:
        sha = self.git.resolve(ref)
        if sha is None:
            raise BadInput(f"unknown inventory branch, tag or commit: {ref}")
        return sha

    def _ignore(self, commit: str | None) -> list[str]:
        if commit is None:
            return []
        return parse_ignore(self.git.read_files(commit, [IGNORE_FILE]).get(IGNORE_FILE))

    @staticmethod
    def _parse(path: str, data: bytes, commit: str) -> InventoryEntry:
        try:
            entry = InventoryEntry.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "record"
            raise IntegrityError(
                f"{path} at {commit[:12]} is not an inventory entry: {where}: {first['msg']}"
            ) from None
        if entry.name != path:
            raise IntegrityError(f"{path} at {commit[:12]} names itself {entry.name!r}")
        return entry

    def _entry_names(self, commit: str) -> list[str]:
        ignore = self._ignore(commit)
        return sorted(path for path in self.git.list_files(commit) if is_entry_path(path, ignore))

    def _read_entries(self, commit: str, names: list[str]) -> dict[str, InventoryEntry]:
        blobs = self.git.read_files(commit, names)
        return {name: self._parse(name, blobs[name], commit) for name in names if name in blobs}

    @staticmethod
    def _check_branch(name: str, what: str) -> str:
        try:
            return check_ref_name(name)
        except ValueError as exc:
            raise BadInput(f"{what}: {exc}") from None

    # ------------------------------------------------------------------------------ writes

    def add_entries(
        self, entries: list[InventoryEntry], branch: str = MASTER, message: str | None = None
    ) -> str | None:
        """Record entries on `branch` in one commit.

        Args:
            entries: the entries; each is written to the path of its name.
            branch: the branch (CI writes `master`).
            message: the commit message (default: names the entries).

        Returns:
            The new head; the current head when every entry was already recorded as given.

        Raises:
            BadInput: for a name given twice, one that clashes with a file or folder, or one
                that `.inventoryignore` on the branch ignores.
        """
        self._check_branch(branch, "inventory branch")
        git = self.git
        if not entries:
            git.fetch()
            return git.resolve(f"refs/heads/{branch}")
        files: dict[str, bytes | None] = {}
        for entry in entries:
            if entry.name in files:
                raise BadInput(f"inventory entry {entry.name} given twice")
            files[entry.name] = entry.to_json() + b"\n"
        names = sorted(files)

        def change(parent: str | None) -> dict[str, bytes | None]:
            if parent is not None:
                self._check_clashes(parent, names)
                # An ignored name would be written and then never read back: refuse it.
                ignore = self._ignore(parent)
                ignored = [n for n in names if not is_entry_path(n, ignore)]
                if ignored:
                    raise BadInput(
                        f"inventory entry {ignored[0]} matches {IGNORE_FILE} on {branch}"
                    )
            return files

        text = message or f"inventory: record {_entries(len(names))}: {_names_line(names)}"
        return git.commit(branch, change, text)

    def _check_clashes(self, commit: str, names: list[str]) -> None:
        # Writing "a/b" over a file "a" (or "a" over a folder "a/") would silently drop entries.
        folders = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
        types = self.git.path_types(commit, [*names, *folders])
        for path, kind in types.items():
            if (path in folders and kind != "tree") or (path in names and kind != "blob"):
                what = "folder" if kind == "tree" else "file"
                raise BadInput(f"inventory path {path} is already a {what}")

    # ------------------------------------------------------------------------------- reads

    def resolve(self, ref: str) -> str | None:
        """Return the commit of a branch, tag or commit, or None when it does not exist."""
        return self._fetched().resolve(ref)

    def branches(self) -> list[str]:
        """Return every branch of the inventory, sorted."""
        return self._fetched().branches()

    def environments(self) -> list[str]:
        """Return the environment branches: every branch but `master` and `promotion/*`."""
        return [b for b in self.branches() if b != MASTER and not b.startswith(_PROMOTION_PREFIX)]

    def entries(self, ref: str) -> dict[str, InventoryEntry]:
        """Return every entry at a branch, tag or commit, by name.

        Raises:
            BadInput: when `ref` does not exist.
            IntegrityError: when a file that should be an entry does not parse as one.
        """
        self._fetched()
        commit = self._commit(ref)
        return self._read_entries(commit, self._entry_names(commit))

    def get(self, name: str, ref: str) -> InventoryEntry | None:
        """Return one entry at a branch, tag or commit, or None when it is not there.

        Raises:
            BadInput: when `ref` does not exist or `name` cannot be an entry name.
        """
        try:
            validate_entry_name(name)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        self._fetched()
        commit = self._commit(ref)
        blobs = self.git.read_files(commit, [name, IGNORE_FILE])
        if name not in blobs or not is_entry_path(name, parse_ignore(blobs.get(IGNORE_FILE))):
            return None
        return self._parse(name, blobs[name], commit)

    def delta(self, from_ref: str | None, to_ref: str) -> Delta:
        """Return what changed from `from_ref` to `to_ref`, reading only the changed entries.

        Args:
            from_ref: the deployed state (a tag, usually); None or missing: everything is added.
            to_ref: the new state (an environment branch, usually).

        Raises:
            BadInput: when `to_ref` does not exist.
        """
        git = self._fetched()
        to = self._commit(to_ref)
        base = git.resolve(from_ref) if from_ref else None
        modified, added, deleted = git.diff(base, to)
        ignore_to = self._ignore(to)
        ignore_from = self._ignore(base)
        changed = [p for p in modified if is_entry_path(p, ignore_to)]
        new = [p for p in added if is_entry_path(p, ignore_to)]
        gone = [p for p in deleted if is_entry_path(p, ignore_from)]
        return Delta(
            changed=changed,
            added=new,
            deleted=gone,
            entries=self._read_entries(to, [*changed, *new]),
        )

    def validate(self, ref: str) -> tuple[str, int, list[BadEntry]]:
        """Check every file that should be an entry at `ref`, from the raw bytes.

        Hidden files, Markdown files and paths matched by `.inventoryignore` are not entries
        and are not checked; every other file must be an entry whose name is its path. Unlike
        `entries`, a bad file does not stop the check: each one is named.

        Returns:
            (the commit checked, how many files were checked, the bad ones by name).

        Raises:
            BadInput: when `ref` does not exist.
        """
        self._fetched()
        commit = self._commit(ref)
        names = self._entry_names(commit)
        blobs = self.git.read_files(commit, names)
        bad = [
            BadEntry(name=name, problem=problem)
            for name in names
            if (problem := _problem(name, blobs.get(name, b""))) is not None
        ]
        return commit, len(names), bad

    def commits_between(self, from_ref: str | None, to_ref: str) -> list[dict[str, str]]:
        """Return the commits in `to_ref` and not in `from_ref` (all when None), newest first."""
        return self._fetched().log(to_ref, exclude=from_ref)

    def log(self, ref: str, name: str | None = None) -> list[dict[str, str]]:
        """Return the commits of `ref` (touching entry `name` if given), newest first."""
        return self._fetched().log(ref, path=name)

    # -------------------------------------------------------------------------- promotions

    def promotion(self, ref: str) -> Promotion | None:
        """Return the promotion recorded at `ref` (`.promotion.json`), or None.

        On an environment branch that is the last promotion merged into it; on a promotion
        branch, the one it carries. A missing ref or file gives None.
        """
        git = self._fetched()
        commit = git.resolve(ref)
        if commit is None:
            return None
        return self._promotion_at(commit)

    def _promotion_at(self, commit: str) -> Promotion | None:
        data = self.git.read_files(commit, [PROMOTION_FILE]).get(PROMOTION_FILE)
        if data is None:
            return None
        try:
            return Promotion.model_validate_json(data)
        except ValidationError as exc:
            raise IntegrityError(
                f"{PROMOTION_FILE} at {commit[:12]} is not a promotion record: "
                f"{exc.errors()[0]['msg']}"
            ) from None

    def promote(self, promotion: Promotion, merge: bool = True) -> Promotion:
        """Promote the entries of `promotion.source` that differ in `promotion.target`.

        Commits them, with `.promotion.json`, on `promotion/<target>/<id>` (started from the
        target's head; a new target starts with no parent, so it holds only what is promoted).
        Deletions are not promoted; `include` / `exclude` globs filter the names.

        Args:
            promotion: the request; `entries` and `source_commit` are filled in.
            merge: merge it into the target now (False leaves it for review, and opens a
                pull request when `pull_requests` is set).

        Returns:
            The promotion as recorded.

        Raises:
            BadInput: for an unknown source, a bad target, a promotion id already open, or a
                pull request asked for into a target that does not exist yet.
            NotReady: when nothing differs.
        """
        source, target = promotion.source, promotion.target
        names, src, tgt = self._promotable(
            source, target, promotion.include, promotion.exclude, promotion.id
        )
        git = self.git
        branch = f"{_PROMOTION_PREFIX}{target}/{promotion.id}"
        if not merge and self.pull_requests is not None and tgt is None:
            # A pull request needs a base branch sharing history with the promotion branch.
            raise BadInput(
                f"cannot open a pull request into {target}: it does not exist yet "
                "(promote to it once without review first)"
            )
        record = Promotion.model_validate(
            {**promotion.model_dump(), "entries": names, "source_commit": src}
        )
        files: dict[str, bytes | None] = dict(git.read_files(src, names))
        files[PROMOTION_FILE] = record.to_json() + b"\n"
        message = (
            f"promote {record.id}: {_entries(len(names))} from {source} to {target}\n\n"
            f"{record.description}\n\n"
            f"priority: {record.priority.value}\nassigned to: {record.assigned_to}\n"
            f"source commit: {src}\nentries: {', '.join(names)}\n"
        )
        git.commit(branch, lambda _parent: files, message, start_point=tgt)
        if merge:
            self.merge_promotion(record.id)
        elif self.pull_requests is not None:
            self.open_pull_request(record.id)
        return record

    def promotable(
        self, source: str, target: str, include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> list[str]:  # fmt: skip
        """Return the entries a promotion from `source` to `target` would carry, sorted.

        A caller can check this before starting a promotion run, so "nothing to promote" is a
        plain answer rather than a failed run.

        Raises:
            BadInput: for an unknown source or a target that cannot be promoted to.
            NotReady: when nothing differs.
        """
        return self._promotable(source, target, include or [], exclude or [])[0]

    def _promotable(
        self, source: str, target: str, include: list[str], exclude: list[str],
        promotion_id: str | None = None,
    ) -> tuple[list[str], str, str | None]:  # fmt: skip
        """(names, source commit, target head or None) of a promotion; fetches first."""
        self._check_branch(target, "promotion target")
        if target in (MASTER, source) or target.startswith(_PROMOTION_PREFIX):
            raise BadInput(f"cannot promote to {target!r}")
        git = self._fetched()
        src = self._commit(source)
        tgt = git.resolve(f"refs/heads/{target}")
        if promotion_id is not None:
            branch = f"{_PROMOTION_PREFIX}{target}/{promotion_id}"
            if git.resolve(f"refs/heads/{branch}") is not None:
                raise BadInput(f"promotion {promotion_id} to {target} is already open ({branch})")
        ignore = self._ignore(src)
        if tgt is None:
            candidates = self._entry_names(src)
        else:
            modified, added, _ = git.diff(tgt, src)
            candidates = [p for p in [*modified, *added] if is_entry_path(p, ignore)]
        names = select_entries(candidates, include, exclude)
        if not names:
            raise NotReady(f"nothing to promote from {source} to {target}")
        return names, src, tgt

    def _open_promotion(self, promotion_id: str) -> tuple[str, str]:
        """Return (branch, target) of the open promotion `promotion_id`."""
        suffix = f"/{promotion_id}"
        matches = [
            b
            for b in self.git.branches()
            if b.startswith(_PROMOTION_PREFIX) and b.endswith(suffix) and b.count("/") >= 2
        ]
        if not matches:
            raise BadInput(f"unknown promotion {promotion_id}")
        if len(matches) > 1:
            raise BadInput(f"promotion {promotion_id} is open for several targets: {matches}")
        branch = matches[0]
        return branch, branch[len(_PROMOTION_PREFIX) : -len(suffix)]

    def open_pull_request(self, promotion_id: str) -> PullRequest:
        """Open an open promotion as a pull / merge request on the forge of `pull_requests`.

        Safe to call again: a request already open for the branch is returned, not duplicated.

        Raises:
            BadInput: when no forge is configured or the promotion is not open.
            PullRequestError: when the forge refuses or cannot be reached.
        """
        if self.pull_requests is None:
            raise BadInput("this inventory has no pull_requests forge configured")
        self._fetched()
        branch, target = self._open_promotion(promotion_id)
        record = self._promotion_at(self._commit(f"refs/heads/{branch}"))
        if record is None:
            raise IntegrityError(f"{branch} carries no {PROMOTION_FILE}")
        title = (
            f"promote {record.id}: {_entries(len(record.entries))} from {record.source} to {target}"
        )
        body = "\n".join(
            [
                record.description,
                "",
                f"- priority: {record.priority.value}",
                f"- assigned to: {record.assigned_to}",
                f"- customer impact: {record.customer_impact.value}",
                f"- backout plan: {record.backout_plan}",
                f"- source commit: {record.source_commit}",
                "",
                "Entries:",
                *(f"- `{name}`" for name in record.entries),
                "",
                f"Approve by merging, or run `changeflow promote --merge {record.id}`.",
            ]
        )
        return self.pull_requests.open(head=branch, base=target, title=title, body=body)

    def merge_promotion(self, promotion_id: str) -> str:
        """Merge an open promotion branch into its target and delete the branch.

        Fast-forwards the target with a compare-and-swap; when the target moved meanwhile, the
        promotion's files are committed again on its new head. History stays linear.

        Returns:
            The target's new head.

        Raises:
            BadInput: for an unknown (or ambiguous) promotion id.
        """
        git = self._fetched()
        branch, target = self._open_promotion(promotion_id)
        target_ref = f"refs/heads/{target}"
        head = self._commit(f"refs/heads/{branch}")
        record = self._promotion_at(head)
        if record is None:
            raise IntegrityError(f"{branch} carries no {PROMOTION_FILE}")
        merged: str | None = None
        for _ in range(3):
            current = git.resolve(target_ref)
            if current is None or git.is_ancestor(current, head):
                try:
                    git.set_ref(target_ref, head, expected=current)
                    merged = head
                    break
                except RefConflict:
                    git.fetch()  # the target moved: look again (and re-apply below)
                    continue
            files: dict[str, bytes | None] = dict(
                git.read_files(head, [*record.entries, PROMOTION_FILE])
            )
            message = (
                git.log(head, max_count=1)[0]["message"] + "\n\n(re-applied on the moved target)"
            )
            merged = git.commit(target, lambda _parent, f=files: f, message) or current
            break
        if merged is None:
            raise RefConflict(f"could not merge {branch} into {target}: it kept moving")
        git.delete_ref(f"refs/heads/{branch}")
        return merged

    # -------------------------------------------------------------------------------- tags

    def tags(self) -> dict[str, str]:
        """Return every tag → the commit it points at."""
        return self._fetched().tags()

    def tag(self, tag: str) -> str | None:
        """Return the commit a tag points at, or None."""
        self._check_branch(tag, "tag")
        return self._fetched().resolve(f"refs/tags/{tag}")

    def _label(self, label: str) -> str:
        self._check_branch(label, "label")
        return f"refs/tags/{label}"

    def labels(self) -> dict[str, str]:
        """Return every label (tag) → the commit it points at."""
        return self.tags()

    def add_label(self, label: str, ref: str) -> str:
        """Create label `label` at `ref` (a branch, label or commit); it must not exist yet.

        Returns:
            The commit it points at.

        Raises:
            BadInput: for a bad or existing label name, a branch of that name, an unknown ref.
        """
        full = self._label(label)
        git = self._fetched()
        if git.resolve(f"refs/heads/{label}") is not None:
            raise BadInput(f"label {label} would be hidden by the branch of the same name")
        commit = self._commit(ref)
        existing = git.resolve(full)
        if existing is not None:
            raise BadInput(f"label {label} already exists (at {existing[:12]}); move it instead")
        try:
            git.set_ref(full, commit, expected=None)
        except RefConflict:
            raise BadInput(f"label {label} was just created by someone else") from None
        return commit

    def move_label(self, label: str, ref: str) -> str:
        """Move the existing label `label` to `ref`, with a compare-and-swap on its value.

        Returns:
            The commit it points at now.

        Raises:
            BadInput: for a bad or unknown label, or an unknown ref.
            RefConflict: when someone else moved or deleted the label at the same time.
        """
        full = self._label(label)
        git = self._fetched()
        current = git.ref_value(full)
        if current is None:
            raise BadInput(f"unknown label {label}")
        commit = self._commit(ref)
        git.set_ref(full, commit, expected=current)
        return commit

    def delete_label(self, label: str) -> str:
        """Delete the label `label`, with a compare-and-swap on its value.

        Returns:
            The commit it pointed at.

        Raises:
            BadInput: for a bad or unknown label.
            RefConflict: when someone else moved or deleted the label at the same time.
        """
        full = self._label(label)
        git = self._fetched()
        current = git.ref_value(full)
        commit = git.resolve(full)
        if current is None or commit is None:
            raise BadInput(f"unknown label {label}")
        git.delete_ref(full, expected=current)
        return commit

    def move_tag(self, tag: str, commit: str) -> None:
        """Point `tag` at `commit` (a commit, branch or tag) on the remote.

        The move is a compare-and-swap on the tag's value as just fetched.

        Raises:
            BadInput: for a bad tag name or an unknown commit.
            RefConflict: when someone else moved the tag at the same time.
        """
        self._check_branch(tag, "tag")
        git = self._fetched()
        git.set_ref(f"refs/tags/{tag}", self._commit(commit))
