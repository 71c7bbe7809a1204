"""Hostile input replayed on the real stack: refused (or harmless), with nothing written.

Issue #11's findings 2 (a crafted entry writes anywhere), 5 (Markdown injection), 7 (one
undated record blocks an asset), 10 (everything checked before the first write) and 11 (a clone
of the change-management repo shows nothing).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from stack_support import git_in, run_changeflow, ship_to_prod

from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.source import checkout
from changeflow.canonical import canonical_json, sha256_hex
from changeflow.change import transition
from changeflow.delta import Delta
from changeflow.errors import BadInput, IntegrityError
from changeflow.evidence import make_evidence
from changeflow.models import Asset, ChangeRequest, ChangeState, InventoryEntry
from changeflow.settings import Settings
from changeflow.summary import UNREADABLE
from cli.local_stack import init_bare_repo
from tasks.deployment import prepare_deployment

RLO = "\u202e"


def one_line(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def bucket_keys(env: dict[str, str]) -> list[str]:
    return EvidenceLocker.from_settings(Settings.from_env(env))._list("")


def refs(url: str) -> str:
    return git_in(Path(url.removeprefix("file://")), "for-each-ref")


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=x", "-c", "user.email=x@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def craft_on_prod(inventory_url: str, work: Path, name: str, **changes: object) -> None:
    """Rewrite an entry on prod with a plain clone and push, as someone with push rights could."""
    git("clone", "--quiet", "--branch", "prod", inventory_url, str(work))
    entry = json.loads((work / name).read_text())
    (work / name).write_text(json.dumps({**entry, **changes}))
    git("commit", "--quiet", "-am", "crafted", cwd=work)
    git("push", "--quiet", "origin", "HEAD:prod", cwd=work)


# -- finding 2: a crafted entry writes anywhere ----------------------------------------------


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_a_crafted_artifact_file_name_is_refused_and_nothing_is_written(
    kind: str,
    deployable: Callable[..., Path],
    stack_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = deployable()
    # every work folder of the deploy inside `work`, so what lands beside it can be seen
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    outside = tmp_path / "outside" / "x.sh"
    # from <work>/changeflow-deploy-*/artifacts/app/bin, four levels up is <work> itself
    filename = "../../../../x.sh" if kind == "relative" else str(outside)
    craft_on_prod(
        stack_env["CHANGEFLOW_INVENTORY_URL"], tmp_path / "clone", "app/bin",
        app_artifacts={"filename": filename},
    )  # fmt: skip

    validated = run_changeflow("inventory", "validate", "--environment", "prod")
    assert validated.returncode == 1, validated.stderr
    assert "bad entry app/bin: app_artifacts" in validated.stdout

    done = run_changeflow("deploy", "--environment", "prod", "--region", "r1")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "app/bin" in done.stderr and "not an inventory entry" in done.stderr
    assert not runs.exists()  # the deploy command never ran
    assert refs(stack_env["CHANGEFLOW_CHANGE_REPO_URL"]) == ""  # no CR filed
    assert not outside.exists() and not (work / "x.sh").exists()
    assert [p.name for p in tmp_path.rglob("x.sh")] == []


def _staged(locker: EvidenceLocker, name: str) -> tuple[Delta, dict[str, InventoryEntry]]:
    stored = locker.store_attachment_bytes(b"artifact bytes", "app.bin")
    entry = InventoryEntry(
        name=name, artifact=stored.url, version="1", type="file", sha256=stored.hash,
        repository_url="https://example.com/app", commit_sha="c" * 40, build_number="1",
        pipeline_run_id="ci-1", provenance=f"artifact://app@{stored.hash}",
        app_artifacts={"filename": "app.bin"},
    )  # fmt: skip
    return Delta(added=[name], entries={name: entry}), {name: entry}


@pytest.mark.parametrize("planted", ["folder", "file", "artifacts"])
def test_a_symlink_in_the_artifacts_folder_is_never_written_through(
    planted: str, locker: EvidenceLocker, tmp_path: Path
) -> None:
    delta, entries = _staged(locker, "app/bin")
    workdir, outside = tmp_path / "work", tmp_path / "outside"
    outside.mkdir()
    (workdir / "artifacts" / "app").mkdir(parents=True)
    if planted == "folder":  # artifacts/app/bin -> outside
        (workdir / "artifacts" / "app" / "bin").symlink_to(outside, target_is_directory=True)
    elif planted == "file":  # artifacts/app/bin/app.bin -> outside/app.bin
        (workdir / "artifacts" / "app" / "bin").mkdir()
        (workdir / "artifacts" / "app" / "bin" / "app.bin").symlink_to(outside / "app.bin")
    else:  # the artifacts folder itself
        (workdir / "artifacts" / "app").rmdir()
        (workdir / "artifacts").rmdir()
        (workdir / "artifacts").symlink_to(outside, target_is_directory=True)
    with pytest.raises(IntegrityError, match="cannot be staged"):
        prepare_deployment.fn(locker, workdir, delta, entries, {})
    assert list(outside.iterdir()) == []


def test_artifacts_are_staged_inside_their_folder(locker: EvidenceLocker, tmp_path: Path) -> None:
    delta, entries = _staged(locker, "team/app")
    env = prepare_deployment.fn(locker, tmp_path / "work", delta, entries, {})
    staged = Path(env["CHANGEFLOW_ARTIFACTS_DIR"]) / "team" / "app" / "app.bin"
    assert staged.read_bytes() == b"artifact bytes"


# -- finding 10: everything is checked before the first write --------------------------------


def test_a_region_with_a_space_files_no_change_request(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    ship_to_prod(["app/bin"], "p1")
    runs = tmp_path / "runs.txt"
    done = run_changeflow(
        "deploy", "--environment", "prod", "--region", "eu de", "--command", f"touch {runs}"
    )
    one_line(done, 2, "region")
    assert refs(stack_env["CHANGEFLOW_CHANGE_REPO_URL"]) == ""
    assert not runs.exists()
    assert "eu de" not in git_in(
        Path(stack_env["CHANGEFLOW_INVENTORY_URL"].removeprefix("file://")), "tag"
    )


def test_a_git_transport_that_runs_commands_is_refused(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    repo = f"ext::sh -c touch% {pwned}"
    # the real executable: whatever Prefect or git would print reaches this stderr
    done = subprocess.run(
        [sys.executable, "-m", "cli", "ci", "--repo", repo, "--commit", "a" * 40],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    one_line(done, 2, "repo_url", "https://")
    assert not pwned.exists()
    assert bucket_keys(stack_env) == []
    assert refs(stack_env["CHANGEFLOW_INVENTORY_URL"]) == ""
    # and where the URL reaches git, it is checked again
    with pytest.raises(BadInput, match="https://"):
        checkout(repo, "a" * 40, tmp_path)
    assert not pwned.exists()


def test_hidden_characters_and_huge_uris_are_refused(stack_env: dict[str, str]) -> None:
    digest = "sha256:" + "b" * 64
    entry = [
        "--artifact", "s3://b/k", "--version", "1", "--sha256", digest, "--type", "file",
        "--repository-url", "https://example.com/app", "--commit-sha", "a" * 40,
        "--build-number", "1", "--pipeline-run-id", "ci-1", "--provenance", f"artifact://a@{digest}",
    ]  # fmt: skip
    one_line(run_changeflow("inventory", "add", "--name", f"app{RLO}nib.exe", *entry), 2, "bidi")
    huge = "https://example.com/app#" + "a" * 100_000
    added = run_changeflow(
        "evidence", "add", "--type", "com.ibm.unit_tests", "--result", "success",
        "--tool", "pytest", "--asset", huge,
    )  # fmt: skip
    one_line(added, 2, "2048")
    assert refs(stack_env["CHANGEFLOW_INVENTORY_URL"]) == ""
    assert bucket_keys(stack_env) == []


# -- finding 7: one undated record blocks an asset ------------------------------------------


@pytest.mark.parametrize(
    ("date", "why"),
    [("2020-01-01", "time zone"), ("2020-01-01T10:00:00", "time zone"), ("2999-01-01T00:00:00Z",
     "future"), ("yesterday", "Invalid isoformat")],
)  # fmt: skip
def test_evidence_dates_must_be_aware_and_not_ahead(
    date: str, why: str, stack_env: dict[str, str]
) -> None:
    done = run_changeflow(
        "evidence", "add", "--type", "com.ibm.unit_tests", "--result", "success",
        "--tool", "pytest", "--asset", "https://example.com/app#" + "a" * 40, "--date", date,
    )  # fmt: skip
    one_line(done, 2, "--date", why)
    assert bucket_keys(stack_env) == []


def test_an_aware_date_is_kept(stack_env: dict[str, str]) -> None:
    when = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    done = run_changeflow(
        "evidence", "add", "--type", "com.ibm.unit_tests", "--result", "success", "--json",
        "--tool", "pytest", "--asset", "https://example.com/app#" + "a" * 40,
        "--date", when.isoformat(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert datetime.fromisoformat(json.loads(done.stdout)["date"]) == when


def plant_records(env: dict[str, str], asset: Asset) -> list[str]:
    """Store two records nobody can read under the asset's markers, with plain boto3 and the
    bucket's credentials: a naive date (sealed, as an older version wrote it) and garbage."""
    locker = EvidenceLocker.from_settings(Settings.from_env(env))
    s3 = boto3.client(
        "s3", endpoint_url=env["CHANGEFLOW_S3_ENDPOINT"], region_name="us-east-1",
        aws_access_key_id=env["CHANGEFLOW_S3_ACCESS_KEY"],
        aws_secret_access_key=env["CHANGEFLOW_S3_SECRET_KEY"],
    )  # fmt: skip
    good = make_evidence(
        evidence_type_id="com.ibm.unit_tests", result="success", tool="t", scope="ci-9",
        assets=[asset],
    )  # fmt: skip
    body = good.model_dump(mode="json", exclude_none=True, exclude={"id"})
    body["date"] = "2020-01-01T00:00:00"
    naive_id = sha256_hex(canonical_json(body))
    planted = {naive_id: canonical_json({**body, "id": naive_id}), "e" * 64: b"{oops"}
    for evidence_id, data in planted.items():
        for key, value in ((locker.layout.evidence(evidence_id), data),
                           (locker.layout.marker(asset.id, evidence_id), b"")):  # fmt: skip
            s3.put_object(
                Bucket=env["CHANGEFLOW_S3_BUCKET"], Key=key, Body=value, ChecksumAlgorithm="SHA256"
            )
    return sorted(planted)


def test_an_unreadable_record_is_failed_evidence_not_a_crash(
    deployable: Callable[..., Path], stack_env: dict[str, str]
) -> None:
    runs = deployable("approval_timeout_s = 1\n")
    from blocks import stores as config

    [entry] = config.inventory(None).entries("prod").values()
    planted = plant_records(stack_env, Asset.for_uri(entry.provenance))

    summary = run_changeflow("evidence", "summary", "--asset", entry.provenance)
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.count(UNREADABLE) == 2
    assert f"evidence {planted[0][:12]} cannot be read" in summary.stdout
    assert "time zone" in summary.stdout and "not a valid record" in summary.stdout

    done = run_changeflow("deploy", "--environment", "prod", "--region", "r1", "--json")
    assert done.returncode == 1, done.stderr  # not ready: timed out waiting for a person
    cr = config.change_management(None).get(json.loads(done.stdout)["change_request"])
    assert not cr.deployment_ready and cr.state is ChangeState.cancelled
    assert sum("cannot be read" in r for r in cr.readiness_reasons) == 2, cr.readiness_reasons
    assert all(any(p in f for f in cr.failed_evidence) for p in planted), cr.failed_evidence
    assert not runs.exists()


# -- finding 5: Markdown injection ----------------------------------------------------------


def test_a_comment_cannot_forge_a_second_approval(tmp_path: Path) -> None:
    remote = tmp_path / "changes.git"
    init_bare_repo(remote, "main")
    block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(tmp_path / "cache"))

    def build(change_id: str) -> ChangeRequest:
        cr = ChangeRequest(id=change_id, environment="prod", region="r1", deployment_run_id="d",
                           description="# Approved\n- approved by cab-chair")  # fmt: skip
        return transition(cr, ChangeState.assess, by="changeflow", why="filed")

    filed = block.create(build)
    block.update(transition(filed, ChangeState.authorize, by="t", why="assessed"), "assessed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGEFLOW_", "PREFECT_API"))}
    env |= {"CHANGEFLOW_CHANGE_REPO_URL": remote.as_uri(), "CHANGEFLOW_HOME": str(tmp_path)}
    done = run_changeflow("cr", "approve", filed.id, "--by", "alice",
                          "--comment", "lgtm\n- approved by cab-chair", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(git_in(remote, "show", f"main:changes/{filed.id}.json"))
    markdown = git_in(remote, "show", f"main:changes/{filed.id}.md")
    assert len(record["approvals"]) == 1
    approvals = [line for line in markdown.splitlines() if re.match(r"- (approved|rejected)", line)]
    assert approvals == [approvals[0]] and "lgtm - approved by cab-chair" in approvals[0]
    assert "# Approved" not in markdown.splitlines()


# -- finding 11: a clone of the change-management repo shows the CRs -------------------------


def _cloned_changes(url: str, where: Path) -> list[str]:
    git("clone", "--quiet", url, str(where))
    return sorted(p.name for p in (where / "changes").glob("CHG*.json"))


def test_a_clone_of_the_change_repo_shows_the_change_requests(
    deployable: Callable[..., Path], stack_env: dict[str, str], tmp_path: Path
) -> None:
    deployable()
    done = run_changeflow("deploy", "--environment", "prod", "--region", "r1", "--json")
    assert done.returncode == 0, done.stderr
    cr = json.loads(done.stdout)["change_request"]
    url = stack_env["CHANGEFLOW_CHANGE_REPO_URL"]
    assert _cloned_changes(url, tmp_path / "audit") == [f"{cr}.json"]


def test_the_block_points_an_old_remotes_head_at_the_change_requests(tmp_path: Path) -> None:
    # a remote made before (HEAD names master, which never exists here)
    remote = tmp_path / "changes.git"
    init_bare_repo(remote)
    assert (remote / "HEAD").read_text().strip() == "ref: refs/heads/master"
    block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(tmp_path / "cache"))
    cr = block.create(
        lambda i: ChangeRequest(id=i, environment="prod", region="r1", deployment_run_id="d")
    )
    assert _cloned_changes(remote.as_uri(), tmp_path / "audit") == [f"{cr.id}.json"]
    # a HEAD naming a branch that exists is someone's choice, and stays
    git_in(remote, "branch", "release", "main")
    git_in(remote, "symbolic-ref", "HEAD", "refs/heads/release")
    block.create(
        lambda i: ChangeRequest(id=i, environment="prod", region="r2", deployment_run_id="d")
    )
    assert (remote / "HEAD").read_text().strip() == "ref: refs/heads/release"
