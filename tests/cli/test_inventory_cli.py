"""`changeflow inventory validate|label` and `changeflow promote` as scripts run them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from stack_support import run_changeflow

from blocks.inventory import GitInventory
from changeflow.models import InventoryEntry, Promotion
from cli.local_stack import init_bare_repo

DIGEST = "sha256:" + "b" * 64
PROMOTE = [
    "promote", "--source", "master", "--target", "staging", "--priority", "moderate",
    "--assigned-to", "release-manager", "--description", "weekly", "--backout-plan", "redeploy",
]  # fmt: skip


def changeflow(*args: str) -> subprocess.CompletedProcess[str]:
    return run_changeflow(*args)


def ok(*args: str) -> subprocess.CompletedProcess[str]:
    done = changeflow(*args)
    assert done.returncode == 0, done.stderr
    return done


def one_line(done: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert needle in lines[0], lines[0]


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def refs(remote: Path) -> str:
    return git("--git-dir", str(remote), "for-each-ref", "--format=%(refname) %(objectname)")


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh inventory remote named by the environment (no Prefect server needed)."""
    path = tmp_path / "inventory.git"
    monkeypatch.setenv("CHANGEFLOW_INVENTORY_URL", init_bare_repo(path))
    monkeypatch.setenv("CHANGEFLOW_HOME", str(tmp_path / "home"))
    return path


def entry(name: str, version: str = "1.0") -> InventoryEntry:
    return InventoryEntry(
        name=name, artifact="s3://b/k", version=version, sha256=DIGEST, type="file",
        repository_url="https://example.com/org/app", commit_sha="a" * 40, build_number="7",
        pipeline_run_id="ci-1", provenance=f"artifact://app@{DIGEST}",
    )  # fmt: skip


def setup_inventory(remote: Path, tmp_path: Path) -> GitInventory:
    """The test's own handle on the remote, for set-up (each CLI process costs seconds)."""
    return GitInventory(remote_url=remote.as_uri(), cache_dir=str(tmp_path / "setup-cache"))


def hand_push(remote: Path, work: Path, files: dict[str, str]) -> None:
    """Commit files with a plain clone and push them, as a person bypassing the CLI would."""
    git("clone", "--quiet", remote.as_uri(), str(work))
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "by hand", cwd=work)
    git("push", "--quiet", "origin", "HEAD:master", cwd=work)


def test_validate_names_each_bad_entry(remote: Path, tmp_path: Path) -> None:
    setup_inventory(remote, tmp_path).add_entries([entry("team/app")])
    done = ok("inventory", "validate", "--environment", "master")
    assert "1 entries checked, all valid" in done.stdout
    good = entry("team/app").model_dump(mode="json")
    hand_push(remote, tmp_path / "work", {
        "team/bad-json": "{oops",
        "team/bad-digest": json.dumps({**good, "name": "team/bad-digest", "sha256": "md5:1"}),
        ".github/ci.yml": "not an entry",
        "scratch/tmp": "ignored",
        ".inventoryignore": "scratch/\n",
    })  # fmt: skip
    done = changeflow("inventory", "validate", "--environment", "master")
    assert done.returncode == 1, done.stderr
    assert "bad entry team/bad-json: not JSON" in done.stdout
    assert "bad entry team/bad-digest: sha256:" in done.stdout
    assert ".github" not in done.stdout and "scratch" not in done.stdout
    report = json.loads(changeflow("inventory", "validate", "--label", "master", "--json").stdout)
    assert report["checked"] == 3 and report["ok"] is False
    assert [b["name"] for b in report["bad"]] == ["team/bad-digest", "team/bad-json"]
    one_line(changeflow("inventory", "validate", "--environment", "nope"), 2, "unknown environment")


def test_labels_from_the_command_line(remote: Path, tmp_path: Path) -> None:
    inventory = setup_inventory(remote, tmp_path)
    first = inventory.add_entries([entry("app")])
    done = ok("inventory", "label", "add", "us-south_prod_latest", "--to", "master", "--json")
    assert json.loads(done.stdout) == {"label": "us-south_prod_latest", "commit": first}
    second = inventory.add_entries([entry("app", "2.0")])
    assert first and second and first != second
    before = refs(remote)
    one_line(changeflow("inventory", "label", "add", "us-south_prod_latest", "--to", "master"),
             2, "already exists")  # fmt: skip
    one_line(changeflow("inventory", "label", "add", "bad..label", "--to", "master"), 2, "label")
    one_line(changeflow("inventory", "label", "move", "nope_latest", "--to", "master"), 2,
             "unknown label")  # fmt: skip
    one_line(changeflow("inventory", "label", "delete", "nope_latest"), 2, "unknown label")
    assert refs(remote) == before  # nothing written by any refusal
    ok("inventory", "label", "move", "us-south_prod_latest", "--to", second)
    assert f"refs/tags/us-south_prod_latest {second}" in refs(remote)
    inventory.add_label("CHG0000042", first)
    labels = json.loads(ok("inventory", "label", "list", "--json").stdout)
    assert labels == {"CHG0000042": first, "us-south_prod_latest": second}
    ok("inventory", "label", "delete", "CHG0000042")
    assert "CHG0000042" not in refs(remote)


def test_promote_for_review_then_merge(
    remote: Path, tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    inventory = setup_inventory(remote, tmp_path)
    inventory.add_entries([entry("app")])
    opened = json.loads(ok(*PROMOTE, "--review", "--json").stdout)
    pid = opened["id"]
    assert opened["entries"] == ["app"]
    assert f"refs/heads/promotion/staging/{pid}" in refs(remote)
    assert "refs/heads/staging" not in refs(remote)  # waits for a person
    merged = ok("promote", "--merge", pid)
    assert f"merged {pid}" in merged.stdout
    assert "promotion/" not in refs(remote) and "refs/heads/staging" in refs(remote)
    assert inventory.get("app", "staging") == entry("app")


def test_a_promotion_left_for_review_says_where_it_waits_and_how_to_merge_it(
    remote: Path, tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    setup_inventory(remote, tmp_path).add_entries([entry("app")])
    said = ok(*PROMOTE, "--review").stdout
    pid = said.split(":", 1)[0].removeprefix("promotion ")
    assert f"waits on branch promotion/staging/{pid}" in said
    assert f"refs/heads/promotion/staging/{pid}" in refs(remote)
    assert "pull request" not in said  # no forge configured: the branch is what to review
    merge = said.rsplit("merge it with: ", 1)[1].split()
    assert merge[:3] == ["changeflow", "promote", "--merge"]
    assert f"merged {pid}" in ok(*merge[1:]).stdout


def test_a_promotion_opened_as_a_pull_request_names_it() -> None:
    from changeflow.change_content import PullRequestLink
    from cli.lifecycle import _where_it_waits

    link = PullRequestLink(number=12, url="https://forge.example/pr/12")
    opened = Promotion(id="p7", source="master", target="staging", assigned_to="rm",
                       description="d", backout_plan="b", pull_request=link)  # fmt: skip
    said = _where_it_waits(opened)
    assert "pull request #12: https://forge.example/pr/12" in said
    assert "waits on branch promotion/staging/p7" in said
    # a forge answering with control characters in the link does not reach the terminal
    link = PullRequestLink(number=13, url="https://forge.example/pr/13\x1b[2J")
    said = _where_it_waits(opened.model_copy(update={"pull_request": link}))
    assert "pull request #13" in said and "\x1b" not in said


def test_nothing_to_promote_is_one_line(
    remote: Path, tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    inventory = setup_inventory(remote, tmp_path)
    inventory.add_entries([entry("app")])
    inventory.promote(Promotion(id="p1", source="master", target="staging", assigned_to="rm",
                                description="d", backout_plan="b"))  # fmt: skip
    before = refs(remote)
    one_line(changeflow(*PROMOTE), 1, "nothing to promote from master to staging")
    assert refs(remote) == before
