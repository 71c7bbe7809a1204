"""The inventory block: one JSON file per built artifact in a bare git remote.

Branch `master` is written by CI, one branch per environment holds what was promoted there,
promotions travel on `promotion/<target>/<id>` branches carrying `.promotion.json`, and labels
(git tags) `<env>_latest` / `<region>_<env>_latest` mark what is deployed. Every method fetches
first. What is an entry, and every text written, is `changeflow.inventory_rules`'s."""

from __future__ import annotations

from pathlib import Path

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, PrivateAttr

from blocks.forges import PullRequest, PullRequestProvider
from blocks.gitrepo import GitRemote, RefConflict, default_cache_dir
from blocks.inventory_tree import (
    commit_of,
    entry_names,
    ignore_globs,
    read_entries,
    ref_name,
    remove_entry_files,
)
from blocks.promotions import PromotionBranches
from changeflow.delta import Delta
from changeflow.delta_origins import Origins
from changeflow.errors import BadInput
from changeflow.inventory_rules import (
    IGNORE_FILE,
    MASTER,
    InventoryCheck,
    check_entries,
    clash_problem,
    entry_files,
    entry_folders,
    is_entry_path,
    is_environment,
    parse_entry,
    parse_ignore,
    record_message,
    refuse_ignored,
)
from changeflow.models import InventoryEntry, Promotion, validate_entry_name
from changeflow.ports import Commit
from changeflow.settings import Settings

__all__ = ["GitInventory"]


class GitInventory(Block):
    """The inventory: a bare git remote holding one JSON file per built artifact.

    Implements the `Inventory` port (`changeflow.ports`).

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
    inventory.move_labels(["us-south_prod_latest"], "prod")
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

    @property
    def _promotions(self) -> PromotionBranches:
        return PromotionBranches(self.git, self.pull_requests)

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
        ref_name(branch, "inventory branch")
        git = self.git
        if not entries:
            git.fetch()
            return git.resolve(f"refs/heads/{branch}")
        files: dict[str, bytes | None] = dict(entry_files(entries))
        names = sorted(files)
        paths = [*names, *entry_folders(names)]

        def change(parent: str | None) -> dict[str, bytes | None]:
            if parent is not None:
                clash = clash_problem(names, git.path_types(parent, paths))
                if clash is not None:
                    raise BadInput(clash)
                # An ignored name would be written and then never read back: refuse it.
                refuse_ignored(names, ignore_globs(git, parent), branch)
            return files

        return git.commit(branch, change, message or record_message(names))

    def remove_entries(
        self, names: list[str], branch: str = MASTER, message: str | None = None
    ) -> str:
        """Delete entries from `branch` in one commit; its head after (`remove_entry_files`)."""
        return remove_entry_files(self.git, branch, names, message)

    # ------------------------------------------------------------------------------- reads

    def resolve(self, ref: str) -> str | None:
        """Return the commit of a branch, label or commit, or None when it does not exist."""
        return self._fetched().resolve(ref)

    def branches(self) -> list[str]:
        """Return every branch of the inventory, sorted."""
        return self._fetched().branches()

    def environments(self) -> list[str]:
        """Return the environment branches: every branch but `master` and `promotion/*`."""
        return [b for b in self.branches() if is_environment(b)]

    def entries(self, ref: str) -> dict[str, InventoryEntry]:
        """Return every entry at a branch, label or commit, by name.

        Raises:
            BadInput: when `ref` does not exist.
            IntegrityError: when a file that should be an entry does not parse as one.
        """
        git = self._fetched()
        commit = commit_of(git, ref)
        return read_entries(git, commit, entry_names(git, commit))

    def get(self, name: str, ref: str) -> InventoryEntry | None:
        """Return one entry at a branch, label or commit, or None when it is not there.

        Raises:
            BadInput: when `ref` does not exist or `name` cannot be an entry name.
        """
        try:
            validate_entry_name(name)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        git = self._fetched()
        commit = commit_of(git, ref)
        blobs = git.read_files(commit, [name, IGNORE_FILE])
        if name not in blobs or not is_entry_path(name, parse_ignore(blobs.get(IGNORE_FILE))):
            return None
        return parse_entry(name, blobs[name], commit)

    def delta(self, from_ref: str | None, to_ref: str) -> Delta:
        """Return what changed from `from_ref` to `to_ref`, reading only the changed entries.

        Args:
            from_ref: the deployed state (a label, usually); None or missing: all is added.
            to_ref: the new state (an environment branch, usually).

        Raises:
            BadInput: when `to_ref` does not exist.
        """
        git = self._fetched()
        to = commit_of(git, to_ref)
        base = git.resolve(from_ref) if from_ref else None
        modified, added, deleted = git.diff(base, to)
        ignore_to = ignore_globs(git, to)
        ignore_from = ignore_globs(git, base)
        changed = [p for p in modified if is_entry_path(p, ignore_to)]
        new = [p for p in added if is_entry_path(p, ignore_to)]
        gone = [p for p in deleted if is_entry_path(p, ignore_from)]
        return Delta(
            changed=changed,
            added=new,
            deleted=gone,
            entries=read_entries(git, to, [*changed, *new]),
        )

    # A block is a pydantic model, whose deprecated classmethod `validate(value)` this shadows;
    # neither pydantic nor Prefect calls that on a block.
    def validate(self, ref: str) -> InventoryCheck:  # type: ignore[override]
        """Check every file that should be an entry at `ref`, from the raw bytes.

        Hidden files, Markdown files and paths matched by `.inventoryignore` are not entries
        and are not checked; every other file must be an entry whose name is its path. Unlike
        `entries`, a bad file does not stop the check: each one is named.

        Raises:
            BadInput: when `ref` does not exist.
        """
        git = self._fetched()
        commit = commit_of(git, ref)
        names = entry_names(git, commit)
        blobs = git.read_files(commit, names)
        return check_entries(commit, {name: blobs.get(name, b"") for name in names})

    def commits_between(self, from_ref: str | None, to_ref: str) -> list[Commit]:
        """Return the commits in `to_ref` and not in `from_ref` (all when None), newest first."""
        return self._fetched().log(to_ref, exclude=from_ref)

    def log(self, ref: str, name: str | None = None) -> list[Commit]:
        """Return the commits of `ref` (touching entry `name` if given), newest first."""
        return self._fetched().log(ref, path=name)

    # ------------------ promotions (port): how one travels and merges is `blocks.promotions`
    def promotion(self, ref: str) -> Promotion | None:
        """Return the promotion recorded at `ref`: on an environment, the last one merged."""
        return self._promotions.record(ref)

    def origins(self, from_ref: str | None, to_ref: str, names: list[str]) -> Origins:
        """Return how each of `names` reached `to_ref` since `from_ref`: commit, promotion."""
        return self._promotions.origins(from_ref, to_ref, names)

    def promote(self, promotion: Promotion, merge: bool = True) -> Promotion:
        """Promote the entries of `promotion.source` that differ in `promotion.target`.

        Args:
            promotion: the request; `entries` and `source_commit` are filled in.
            merge: merge it into the target now (False leaves it for review, and opens a
                pull request when `pull_requests` is set).

        Raises:
            BadInput: for an unknown source, a bad target, a promotion id already open, or a
                pull request asked for into a target that does not exist yet.
            NotReady: when nothing differs.
        """
        return self._promotions.promote(promotion, merge)

    def promotable(
        self, source: str, target: str, include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> list[str]:  # fmt: skip
        """Return the entries a promotion would carry, so "nothing" is an answer, not a failure.

        Raises:
            BadInput: for an unknown source or a target that cannot be promoted to.
            NotReady: when nothing differs.
        """
        return self._promotions.select(source, target, include or [], exclude or [])[0]

    def open_pull_request(self, promotion_id: str) -> PullRequest:
        """Open an open promotion as a pull / merge request (the one already open if any).

        Raises:
            BadInput: when no forge is configured or the promotion is not open.
            PullRequestError: when the forge refuses or cannot be reached.
        """
        return self._promotions.open_pull_request(promotion_id)

    def merge_promotion(self, promotion_id: str) -> str:
        """Merge an open promotion into its target (history stays linear); its new head.

        Raises:
            BadInput: for an unknown (or ambiguous) promotion id.
        """
        return self._promotions.merge(promotion_id)

    # ------------------------------------------------------------------------------ labels

    def _label(self, label: str) -> str:
        ref_name(label, "label")
        return f"refs/tags/{label}"

    @staticmethod
    def _refuse_hidden(git: GitRemote, label: str) -> None:
        if git.resolve(f"refs/heads/{label}") is not None:
            raise BadInput(f"label {label} would be hidden by the branch of the same name")

    def labels(self) -> dict[str, str]:
        """Return every label (git tag) → the commit it points at."""
        return self._fetched().tags()

    def add_label(self, label: str, ref: str) -> str:
        """Create label `label` at `ref` (a branch, label or commit); it must not exist yet.

        Returns:
            The commit it points at.

        Raises:
            BadInput: for a bad or existing label name, a branch of that name, an unknown ref.
        """
        full = self._label(label)
        git = self._fetched()
        self._refuse_hidden(git, label)
        commit = commit_of(git, ref)
        existing = git.resolve(full)
        if existing is not None:
            raise BadInput(f"label {label} already exists (at {existing[:12]}); move it instead")
        try:
            git.set_ref(full, commit, expected=None)
        except RefConflict:
            raise BadInput(f"label {label} was just created by someone else") from None
        return commit

    def move_labels(self, labels: list[str], ref: str) -> str:
        """Point every label of `labels` at `ref`, creating missing ones, in one atomic push.

        A first deployment moves labels that do not exist yet; each swap expects the value the
        label had (or its absence) when this call looked. All of them move, or none does.

        Returns:
            The commit they point at now.

        Raises:
            BadInput: for a bad label name, a new label hidden by a branch, an unknown ref.
            RefConflict: when someone else moved, made or deleted one of them at the same time.
        """
        tags = {label: self._label(label) for label in labels}
        git = self._fetched()
        leases = {tag: git.ref_value(tag) for tag in tags.values()}
        for label, tag in tags.items():
            if leases[tag] is None:
                self._refuse_hidden(git, label)
        commit = commit_of(git, ref)
        git.set_refs(dict.fromkeys(leases, commit), leases)
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
