"""A promotion opened as a pull request records it (issue 14), so its CRs can name it: on its
branch, through the merge (fast-forward or re-applied on a moved target), and in `origins`."""

from __future__ import annotations

from pathlib import Path

from forges import GITHUB_REPO, GITLAB_PROJECT, Forge
from stack_support import git_in
from test_pull_request_contract import (
    entry,
    github_client,
    gitlab_client,
    promotion,
    staged_inventory,
)

from changeflow.change_content import PullRequestLink


def test_the_pull_request_is_recorded_and_merged_with_the_promotion(
    github: Forge, bare: Path, tmp_path: Path
) -> None:
    inventory = staged_inventory(bare, tmp_path, github_client(github))
    deployed = inventory.resolve("staging")
    link = PullRequestLink(number=1, url=f"https://github.com/{GITHUB_REPO}/pull/1")

    record = inventory.promote(promotion("rel-8"), merge=False)

    assert record.pull_request == link
    branch = "promotion/staging/rel-8"
    noted = inventory.promotion(branch)
    assert noted is not None and noted.pull_request == link
    assert noted.model_copy(update={"pull_request": None}) == record.model_copy(
        update={"pull_request": None}
    )
    log = git_in(bare, "log", "--format=%s", f"{branch}", f"^{deployed}").splitlines()
    assert log[0] == f"promotion rel-8: opened as pull request #1 ({link.url})"
    inventory.open_pull_request("rel-8")  # a rerun finds it noted: no second commit
    assert len(git_in(bare, "log", "--format=%s", branch, f"^{deployed}").splitlines()) == 2

    inventory.merge_promotion("rel-8")  # fast-forward: the note comes along

    merged = inventory.promotion("staging")
    assert merged is not None and merged.pull_request == link
    origins = inventory.origins(deployed, "staging", ["app-a", "app-b"])
    assert [(a.entry, a.promotion) for a in origins.arrivals] == [
        ("app-a", "rel-8"),
        ("app-b", "rel-8"),
    ]
    assert [p.pull_request for p in origins.promotions] == [link]
    assert github.violations == []


def test_a_merge_request_survives_a_merge_onto_a_moved_target(
    gitlab: Forge, bare: Path, tmp_path: Path
) -> None:
    inventory = staged_inventory(bare, tmp_path, gitlab_client(gitlab))
    deployed = inventory.resolve("staging")
    inventory.promote(promotion("rel-10"), merge=False)
    inventory.add_entries([entry("hotfix")], branch="staging")  # the target moves meanwhile

    inventory.merge_promotion("rel-10")  # re-applied on the new head, as one commit

    url = f"https://gitlab.com/{GITLAB_PROJECT}/-/merge_requests/1"
    origins = inventory.origins(deployed, "staging", ["app-a", "hotfix"])
    assert [(a.entry, a.promotion) for a in origins.arrivals] == [
        ("app-a", "rel-10"),
        ("hotfix", None),
    ]
    assert origins.promotions[0].pull_request == PullRequestLink(number=1, url=url)
    assert gitlab.violations == []
