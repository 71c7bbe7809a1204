"""A deletion reaches prod (issue 14), on the real stack: SeaweedFS, bare git remotes, Prefect.

An entry removed from master is promoted to prod as a deletion; the next prod deploy receives
it in `CHANGEFLOW_DELETIONS_PATH` and its CR lists it. Each CR names the promotion that brought
each entry, an entry written straight to prod as such, and the application's commits.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from stack_support import git_in, run_changeflow, ship_to_prod

from blocks import stores as config
from blocks.inventory import GitInventory
from changeflow.models import CloseCategory
from changeflow.requests import DeploymentRequest, RecordStores
from flows.deploy_flow import deploy

_PROMOTE = [
    "promote", "--source", "master", "--target", "prod", "--priority", "moderate",
    "--assigned-to", "rm", "--description", "retire app/old", "--backout-plan", "re-add it",
]  # fmt: skip


def test_a_deletion_reaches_prod_and_its_cr(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = tmp_path / "deletions.json"
    environments = tmp_path / "environments.toml"
    environments.write_text(
        '[environments.prod]\nregions = ["r1"]\n'
        f'deploy = ["sh", "-c", "cp \\"$CHANGEFLOW_DELETIONS_PATH\\" {received}"]\n'
    )
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
    ship_to_prod(["app/bin", "app/old"], "p1")
    inventory = config.inventory(None)
    assert isinstance(inventory, GitInventory)
    # issue 14: app/bin is then written straight to prod, built from a real app repository
    app_url, shas = _app_repository(tmp_path)
    direct = _write_directly(inventory, app_url, shas[0])
    first = deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())
    assert first.close_category == CloseCategory.successful.value
    assert json.loads(received.read_text()) == []
    assert first.change_request is not None
    filed = config.change_management(None).get(first.change_request)
    assert [p.id for p in filed.promotions or []] == ["p1"] and filed.promotion_id == "p1"
    assert [(a.entry, a.commit, a.promotion) for a in filed.arrivals or []] == [
        ("app/bin", direct, None), ("app/old", inventory.git.parents(direct)[0], "p1"),
    ]  # fmt: skip
    bin_log, old_log = filed.change_log
    assert [(c.sha, c.message) for c in bin_log.commits or []] == [(shas[0], "start")]
    # https://example.com/app cannot be read: the CR says so, the deploy went on
    assert old_log.commits is None and "cannot clone https://example.com/app" in str(old_log.error)

    master = inventory.resolve("master")
    for bad in (("../etc",), ("app/old", "--environment", "no-such-branch")):
        refused = run_changeflow("inventory", "remove", *bad)
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert inventory.resolve("master") == master  # nothing written
    removed = run_changeflow("inventory", "remove", "app/old")
    assert removed.returncode == 0, removed.stderr
    promoted = run_changeflow(*_PROMOTE, "--exclude", "app/bin")  # prod keeps its hotfix

    assert promoted.returncode == 0, promoted.stderr
    record = inventory.promotion("prod")
    assert record is not None and (record.entries, record.deletions) == ([], ["app/old"])
    assert sorted(inventory.entries("prod")) == ["app/bin"]
    hotfix = _write_directly(inventory, app_url, shas[2])  # after the promotion, on prod

    second = deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())

    assert second.change_request is not None
    assert json.loads(received.read_text()) == ["app/old"]
    cr = config.change_management(None).get(second.change_request)
    assert cr.deletions == ["app/old"] and cr.delta == ["app/bin"]
    shown = run_changeflow("cr", "get", cr.id).stdout
    assert "- deleted: `app/old`" in shown
    # the promotion that brought the deletion, not "the last one merged"; the hotfix by name
    assert cr.promotions == [record] and cr.description == "retire app/old"
    assert [(a.entry, a.promotion) for a in cr.arrivals or []] == [
        ("app/bin", None), ("app/old", record.id),
    ]  # fmt: skip
    assert f"- `app/bin`: no promotion: written directly to prod in commit `{hotfix}`" in shown
    [log] = cr.change_log  # shas[0] -> shas[2], with the pull requests their messages name
    assert (log.from_commit, log.to_commit) == (shas[0], shas[2])
    assert [(c.sha, c.pull_request.number if c.pull_request else None)
            for c in log.commits or []] == [(shas[2], 5), (shas[1], 4)]  # fmt: skip
    assert f"  - `{shas[1][:12]}` Add login (#4) (#4)" in shown  # no forge: no link

    # prod reads only the hosts it lists: the app's repository, a folder on this worker, is not
    environments.write_text(f'{environments.read_text()}change_log_hosts = ["github.com"]\n')
    _write_directly(inventory, app_url, shas[1])
    third = deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())
    assert third.change_request is not None
    [log] = config.change_management(None).get(third.change_request).change_log
    assert log.commits is None and log.error == (
        "not read: a repository on the worker is not in the environment's change_log_hosts"
    )


def _app_repository(tmp_path: Path) -> tuple[str, list[str]]:
    """An application repository with three commits (oldest first) on main, and its URL."""
    work = tmp_path / "app"
    who = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}  # fmt: skip
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(work)], check=True)
    for message in ["start", "Add login (#4)", "Merge pull request #5 from acme/fix"]:
        subprocess.run(["git", "-C", str(work), "commit", "--quiet", "--allow-empty", "-m",
                        message], check=True, env={**os.environ, **who})  # fmt: skip
    shas = git_in(work / ".git", "rev-list", "--reverse", "main").split()
    return work.as_uri(), shas


def _write_directly(inventory: GitInventory, app_url: str, commit: str) -> str:
    """Write app/bin straight to prod (the same artifact, built from `commit` of `app_url`)."""
    built = inventory.get("app/bin", "prod")
    assert built is not None
    changed = built.model_copy(update={"repository_url": app_url, "commit_sha": commit})
    head = inventory.add_entries([changed], branch="prod", message="hotfix written to prod")
    assert head is not None
    return head
