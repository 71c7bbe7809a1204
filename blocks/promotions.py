"""Promotion branches in the inventory remote: opened, read back, merged into their target.

A promotion travels on `promotion/<target>/<id>` (started from the target's head; a new target
starts with no parent) carrying its record in `.promotion.json`; merging fast-forwards the
target with a compare-and-swap, or, when the target moved meanwhile, commits the promotion's
files again on its new head, so history stays linear. Which entries a promotion carries (and
which it deletes) is the domain's rule (`changeflow.delta.select_promotion_changes`); every
text is the domain's too.
"""

from __future__ import annotations

from blocks.forges import PullRequest, PullRequestProvider
from blocks.gitrepo import GitRemote, RefConflict
from blocks.inventory_tree import commit_of, entry_names, ignore_globs, ref_name
from changeflow.change_content import PullRequestLink
from changeflow.delta import select_promotion_changes
from changeflow.delta_origins import Origins, trace_origins
from changeflow.errors import BadInput, IntegrityError
from changeflow.inventory_rules import (
    PROMOTION_FILE,
    REAPPLIED,
    check_promotion_target,
    find_promotion,
    is_entry_path,
    parse_promotion,
    promotion_branch,
    promotion_message,
    pull_request_message,
    pull_request_text,
)
from changeflow.models import Promotion

__all__ = ["PromotionBranches"]

# How often a merge looks again at a target that moved under it before committing on top.
_MERGE_LOOKS = 3


def _link(opened: PullRequest) -> PullRequestLink:
    return PullRequestLink(number=opened.number, url=opened.url)


class PromotionBranches:
    """The promotions of one inventory remote; every public method fetches first.

    Args:
        git: the inventory remote.
        pull_requests: the forge a promotion left for review is opened on, if any.
    """

    def __init__(self, git: GitRemote, pull_requests: PullRequestProvider | None) -> None:
        self.git = git
        self.pull_requests = pull_requests

    def _record_at(self, commit: str) -> Promotion | None:
        data = self.git.read_files(commit, [PROMOTION_FILE]).get(PROMOTION_FILE)
        return None if data is None else parse_promotion(data, commit)

    def _open(self, promotion_id: str) -> tuple[str, str, str, Promotion]:
        """(branch, target, branch head, record) of the open promotion `promotion_id`."""
        branch, target = find_promotion(self.git.branches(), promotion_id)
        head = commit_of(self.git, f"refs/heads/{branch}")
        record = self._record_at(head)
        if record is None:
            raise IntegrityError(f"{branch} carries no {PROMOTION_FILE}")
        return branch, target, head, record

    def _reapply(self, target: str, head: str, record: Promotion) -> str | None:
        """Commit the promotion at `head` again on the moved `target`; its new head."""
        files: dict[str, bytes | None] = dict(
            self.git.read_files(head, [*record.entries, PROMOTION_FILE])
        )
        files.update(dict.fromkeys(record.deletions))  # None: deleted on the new head too
        message = self.git.log(head, max_count=1)[0].message + REAPPLIED
        return self.git.commit(target, lambda _parent: files, message)

    def record(self, ref: str) -> Promotion | None:
        """The promotion recorded at `ref`, or None (a missing ref or record)."""
        self.git.fetch()
        commit = self.git.resolve(ref)
        return None if commit is None else self._record_at(commit)

    def select(
        self, source: str, target: str, include: list[str], exclude: list[str],
        promotion_id: str | None = None,
    ) -> tuple[list[str], str, str | None, list[str]]:  # fmt: skip
        """(entry names, source commit, target head or None, names to delete) of a promotion.

        Raises:
            BadInput: for an unknown source, a bad target, or `promotion_id` already open.
            NotReady: when nothing differs.
        """
        ref_name(target, "promotion target")
        check_promotion_target(source, target)
        git = self.git
        git.fetch()
        src = commit_of(git, source)
        tgt = git.resolve(f"refs/heads/{target}")
        if promotion_id is not None:
            branch = promotion_branch(target, promotion_id)
            if git.resolve(f"refs/heads/{branch}") is not None:
                raise BadInput(f"promotion {promotion_id} to {target} is already open ({branch})")
        gone: list[str] = []
        if tgt is None:
            differing = entry_names(git, src)
        else:
            ignore = ignore_globs(git, src)
            modified, added, deleted = git.diff(tgt, src)
            differing = [p for p in [*modified, *added] if is_entry_path(p, ignore)]
            gone = [p for p in deleted if is_entry_path(p, ignore)]
        names, removed = select_promotion_changes(
            differing, gone, include, exclude, source=source, target=target
        )
        return names, src, tgt, removed

    def promote(self, promotion: Promotion, merge: bool) -> Promotion:
        """Open `promotion` on its branch and merge it, or leave it for review.

        Commits the entries of the source that differ in the target, with `.promotion.json`,
        on `promotion/<target>/<id>` (started from the target's head; a new target starts with
        no parent, so it holds only what is promoted), and deletes the entries the source no
        longer has (`deletions`); `include` / `exclude` globs filter both. Left for review, it
        is opened as a pull request when a forge is configured.

        Returns:
            The promotion as recorded, `entries` and `source_commit` filled in.

        Raises:
            BadInput: as `select`, or for a pull request into a target that does not exist.
            NotReady: when nothing differs.
        """
        names, src, tgt, removed = self.select(
            promotion.source, promotion.target, promotion.include, promotion.exclude,
            promotion.id,
        )  # fmt: skip
        if not merge and self.pull_requests is not None and tgt is None:
            # A pull request needs a base branch sharing history with the promotion branch.
            raise BadInput(
                f"cannot open a pull request into {promotion.target}: it does not exist yet "
                "(promote to it once without review first)"
            )
        record = Promotion.model_validate(
            {**promotion.model_dump(), "entries": names, "source_commit": src,
             "deletions": removed}
        )  # fmt: skip
        files: dict[str, bytes | None] = dict(self.git.read_files(src, names))
        files.update(dict.fromkeys(removed))  # None deletes the path
        files[PROMOTION_FILE] = record.to_json() + b"\n"
        branch = promotion_branch(record.target, record.id)
        self.git.commit(branch, lambda _parent: files, promotion_message(record), start_point=tgt)
        if merge:
            self.merge(record.id)
        elif self.pull_requests is not None:
            opened = self.open_pull_request(record.id)
            record = record.model_copy(update={"pull_request": _link(opened)})
        return record

    def open_pull_request(self, promotion_id: str) -> PullRequest:
        """Open the open promotion `promotion_id` as a pull / merge request (or find it open).

        Raises:
            BadInput: when no forge is configured or the promotion is not open.
            PullRequestError: when the forge refuses or cannot be reached.
        """
        if self.pull_requests is None:
            raise BadInput("this inventory has no pull_requests forge configured")
        self.git.fetch()
        branch, target, _, record = self._open(promotion_id)
        title, body = pull_request_text(record, target)
        opened = self.pull_requests.open(head=branch, base=target, title=title, body=body)
        self._note_pull_request(branch, _link(opened))
        return opened

    def _note_pull_request(self, branch: str, link: PullRequestLink) -> None:
        """Record the pull request in the promotion's record, on its branch (one more commit,
        changing `.promotion.json` only): the merge carries it to the target and its CRs."""
        noted: list[Promotion] = []

        def change(parent: str | None) -> dict[str, bytes | None] | None:
            record = None if parent is None else self._record_at(parent)
            if record is None or record.pull_request == link:
                return None  # merged or gone meanwhile, or noted already
            noted[:] = [record.model_copy(update={"pull_request": link})]
            return {PROMOTION_FILE: noted[0].to_json() + b"\n"}

        self.git.commit(branch, change, lambda: pull_request_message(noted[0]))

    def origins(self, from_ref: str | None, to_ref: str, names: list[str]) -> Origins:
        """How each of `names` reached `to_ref` since `from_ref` (`changeflow.delta_origins`).

        One `git log --first-parent` of the range, limited to those paths and
        `.promotion.json`, lists what each commit changed (a forge's merge commit against its
        first parent); the records read are those of the commits that brought an entry.
        """
        git = self.git
        git.fetch()
        head = commit_of(git, to_ref)
        base = git.resolve(from_ref) if from_ref else None
        if not names:
            return Origins()
        history = git.changed_paths(head, base, [*names, PROMOTION_FILE])
        return trace_origins(history, names, self._record_at)

    def merge(self, promotion_id: str) -> str:
        """Merge the open promotion `promotion_id` into its target; the target's new head.

        Fast-forwards the target with a compare-and-swap; when the target moved meanwhile, the
        promotion's files are committed again on its new head. The branch is then deleted.

        Raises:
            BadInput: for an unknown (or ambiguous) promotion id.
            RefConflict: when the target kept moving.
        """
        git = self.git
        git.fetch()
        branch, target, head, record = self._open(promotion_id)
        target_ref = f"refs/heads/{target}"
        merged: str | None = None
        for _ in range(_MERGE_LOOKS):
            current = git.resolve(target_ref)
            if current is not None and not git.is_ancestor(current, head):
                merged = self._reapply(target, head, record) or current
                break
            try:
                git.set_ref(target_ref, head, expected=current)
            except RefConflict:
                git.fetch()  # the target moved: look again (and re-apply next time round)
                continue
            merged = head
            break
        if merged is None:
            raise RefConflict(f"could not merge {branch} into {target}: it kept moving")
        git.delete_ref(f"refs/heads/{branch}")
        return merged
