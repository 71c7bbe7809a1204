"""The pull-request client against local servers that hold it to GitHub's and GitLab's docs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from forges import GITHUB_REPO, GITLAB_PROJECT, TOKEN, Forge
from pydantic import SecretStr

from blocks.forges import GitHubPullRequests, GitLabMergeRequests, PullRequestError
from blocks.inventory import GitInventory
from changeflow.errors import BadInput
from changeflow.models import InventoryEntry, Promotion


def entry(name: str, version: str = "1.0.0") -> InventoryEntry:
    digest = hashlib.sha256(f"{name}@{version}".encode()).hexdigest()
    return InventoryEntry(
        name=name, artifact=f"artifact://{name}@sha256:{digest}", version=version, type="file",
        sha256=f"sha256:{digest}", repository_url="https://git.example/org/app",
        commit_sha=hashlib.sha1(version.encode()).hexdigest(), build_number=version,
        pipeline_run_id=f"ci-{version}", provenance=f"artifact://{name}@sha256:{digest}",
    )  # fmt: skip


def promotion(pid: str) -> Promotion:
    return Promotion(
        id=pid, source="master", target="staging", assigned_to="release-manager",
        description="weekly release", backout_plan="redeploy the previous tag",
    )  # fmt: skip


def github_client(forge: Forge, token: str = TOKEN) -> GitHubPullRequests:
    return GitHubPullRequests(repository=GITHUB_REPO, token=SecretStr(token), api_url=forge.url)


def gitlab_client(forge: Forge, token: str = TOKEN) -> GitLabMergeRequests:
    return GitLabMergeRequests(project=GITLAB_PROJECT, token=SecretStr(token), api_url=forge.url)


def staged_inventory(bare: Path, tmp_path: Path, forge_client: object) -> GitInventory:
    """An inventory whose staging exists, with a newer app-a on master waiting to be promoted."""
    plain = GitInventory(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "cache"))
    plain.add_entries([entry("app-a")])
    plain.promote(promotion("first"))
    plain.add_entries([entry("app-a", "2.0.0"), entry("app-b")])
    return GitInventory(
        remote_url=bare.as_uri(), cache_dir=str(tmp_path / "cache"), pull_requests=forge_client
    )


def test_github_pull_request_for_a_promotion_left_for_review(
    github: Forge, bare: Path, tmp_path: Path
) -> None:
    inventory = staged_inventory(bare, tmp_path, github_client(github))
    record = inventory.promote(promotion("rel-8"), merge=False)
    assert github.violations == []
    get, post = github.requests
    assert (get.method, get.path) == ("GET", f"/repos/{GITHUB_REPO}/pulls")
    assert get.query == {"head": ["acme:promotion/staging/rel-8"], "base": ["staging"],
                         "state": ["open"]}  # fmt: skip
    assert (post.method, post.path) == ("POST", f"/repos/{GITHUB_REPO}/pulls")
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.headers["Accept"] == "application/vnd.github+json"
    assert set(post.body) == {"title", "head", "base", "body"}
    assert post.body["head"] == "promotion/staging/rel-8" and post.body["base"] == "staging"
    assert post.body["title"] == "promote rel-8: 2 entries from master to staging"
    assert "`app-b`" in post.body["body"] and "promote --merge rel-8" in post.body["body"]
    assert record.entries == ["app-a", "app-b"]
    # a rerun finds the open pull request instead of opening a second one
    again = inventory.open_pull_request("rel-8")
    assert again.created is False and again.number == 1
    assert again.url == f"https://github.com/{GITHUB_REPO}/pull/1"
    assert len(github.posts()) == 1 and github.violations == []


def test_github_race_answers_with_the_pull_request_another_run_opened(
    github: Forge, bare: Path, tmp_path: Path
) -> None:
    inventory = staged_inventory(bare, tmp_path, github_client(github))
    inventory.promote(promotion("rel-9"), merge=False)
    github.hide_next_list = True  # the look misses it: the POST gets GitHub's 422
    pull = inventory.open_pull_request("rel-9")
    assert pull.created is False and pull.head == "promotion/staging/rel-9"
    assert [r.method for r in github.requests] == ["GET", "POST", "GET", "POST", "GET"]
    assert len(github.pulls) == 1 and github.violations == []


def test_github_refusals_name_the_reason_and_never_the_token(
    github: Forge, bare: Path, tmp_path: Path
) -> None:
    staged_inventory(bare, tmp_path, None)
    wrong = "ghp_wrongTOKEN9876543210"
    with pytest.raises(PullRequestError, match="401: Bad credentials") as info:
        github_client(github, wrong).open("master", "staging", "t", "b")
    assert wrong not in str(info.value) and TOKEN not in str(info.value)
    with pytest.raises(PullRequestError, match=r"refused .*Validation Failed.*'head'"):
        github_client(github).open("no-such-branch", "staging", "t", "b")
    assert github.violations == []


def test_no_pull_request_into_a_target_that_does_not_exist(
    github: Forge, bare: Path, tmp_path: Path
) -> None:
    inventory = GitInventory(
        remote_url=bare.as_uri(), cache_dir=str(tmp_path / "c"), pull_requests=github_client(github)
    )
    inventory.add_entries([entry("app-a")])
    with pytest.raises(BadInput, match="does not exist yet"):
        inventory.promote(promotion("p1"), merge=False)
    assert inventory.branches() == ["master"] and github.requests == []
    inventory.promote(promotion("p2"))  # merged at once: no pull request at all
    assert github.requests == []


def test_gitlab_merge_request_for_a_promotion_left_for_review(
    gitlab: Forge, bare: Path, tmp_path: Path
) -> None:
    inventory = staged_inventory(bare, tmp_path, gitlab_client(gitlab))
    inventory.promote(promotion("rel-10"), merge=False)
    assert gitlab.violations == []
    get, post = gitlab.requests
    path = "/api/v4/projects/acme%2Finventory/merge_requests"
    assert (get.method, get.path, post.method, post.path) == ("GET", path, "POST", path)
    assert get.query == {"source_branch": ["promotion/staging/rel-10"],
                         "target_branch": ["staging"], "state": ["opened"]}  # fmt: skip
    assert post.headers["PRIVATE-TOKEN"] == TOKEN and "Authorization" not in post.headers
    assert set(post.body) == {"source_branch", "target_branch", "title", "description"}
    assert post.body["source_branch"] == "promotion/staging/rel-10"
    assert post.body["target_branch"] == "staging"
    again = inventory.open_pull_request("rel-10")
    assert again.created is False and again.number == 1 and again.state == "opened"
    assert again.url == f"https://gitlab.com/{GITLAB_PROJECT}/-/merge_requests/1"
    assert len(gitlab.posts()) == 1
    gitlab.hide_next_list = True  # GitLab's 409 for a second one is answered with the first
    assert inventory.open_pull_request("rel-10").number == 1
    assert len(gitlab.pulls) == 1 and gitlab.violations == []


def test_gitlab_refusals_never_show_the_token(gitlab: Forge, bare: Path, tmp_path: Path) -> None:
    staged_inventory(bare, tmp_path, None)
    wrong = "glpat-wrongTOKEN"
    with pytest.raises(PullRequestError, match="401") as info:
        gitlab_client(gitlab, wrong).open("master", "staging", "t", "b")
    assert wrong not in str(info.value)
    with pytest.raises(PullRequestError, match="404 Branch Not Found"):
        gitlab_client(gitlab).open("nope", "staging", "t", "b")
    assert gitlab.violations == []


def test_the_contract_servers_reject_what_the_docs_do_not_allow(
    github: Forge, gitlab: Forge
) -> None:
    # the stand-ins themselves must be able to fail a client that drifts
    with httpx.Client(base_url=github.url) as client:
        headers = {"Authorization": f"Bearer {TOKEN}", "X-GitHub-Api-Version": "2022-11-28"}
        assert client.get(f"/repos/{GITHUB_REPO}/pulls", headers=headers).status_code == 415
        headers["Accept"] = "application/vnd.github+json"
        post = client.post(f"/repos/{GITHUB_REPO}/pulls", headers=headers,
                           json={"source": "a", "target": "b", "title": "t"})  # fmt: skip
        assert post.status_code == 422
    with httpx.Client(base_url=gitlab.url) as client:
        post = client.post(f"/projects/{GITLAB_PROJECT.replace('/', '%2F')}/merge_requests",
                           headers={"PRIVATE-TOKEN": TOKEN},
                           json={"head": "a", "base": "b", "title": "t"})  # fmt: skip
        assert post.status_code == 400
    assert len(github.violations) == 2 and len(gitlab.violations) == 1
