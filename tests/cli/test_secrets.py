"""Issue #11, findings 3 and 4: tokens never leak, files holding secrets are owner-only from
their creation, and the CLI's `deploy --command` stays a local choice, never a run parameter."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from git import Repo
from stack_support import run_changeflow

from blocks.change_management import GitChangeManagement
from blocks.gitrepo.errors import GitError
from blocks.gitrepo.mirror import GitMirror
from changeflow.models import ChangeRequest
from cli.local_stack import LocalStack, write_private

TOKEN = "ghp_" + uuid.uuid4().hex
ENTRY = [
    "--name", "app/bin", "--artifact", "s3://b/k", "--version", "1.0",
    "--sha256", "sha256:" + "b" * 64, "--type", "file", "--commit-sha", "a" * 40,
    "--build-number", "7", "--pipeline-run-id", "ci-1",
    "--provenance", "artifact://app@sha256:" + "b" * 64,
]  # fmt: skip


def _refused_without_the_token(done: object, *needles: str) -> str:
    code, out, err = (getattr(done, n) for n in ("returncode", "stdout", "stderr"))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert TOKEN not in out + err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return str(lines[0])


def _refs(url: str) -> list[str]:
    return [r.path for r in Repo(url.removeprefix("file://")).refs]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _flow_run_parameters() -> str:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return json.dumps([r.parameters for r in client.read_flow_runs(limit=200)])


@pytest.mark.parametrize(
    "url",
    [
        f"https://bot:{TOKEN}@git.example/org/app.git",
        f"https://{TOKEN}@git.example/org/app.git",
        f"ssh://bot:{TOKEN}@git.example/org/app.git",
    ],
    # fixed ids: every xdist worker must collect the same test names
    ids=["user-and-token", "token-only", "ssh"],
)
def test_ci_refuses_a_repo_url_with_credentials_and_points_to_the_helper(
    stack_env: dict[str, str], url: str
) -> None:
    done = run_changeflow("ci", "--repo", url, "--commit", "a" * 40)
    line = _refused_without_the_token(done, "carries credentials", "credential helper")
    assert "***@git.example" in line
    # no run was started: the token is in no run's parameters (nor its logs), nothing written
    assert TOKEN not in _flow_run_parameters()
    assert _refs(stack_env["CHANGEFLOW_INVENTORY_URL"]) == []


def test_an_entry_with_credentials_in_its_repository_url_is_refused(
    stack_env: dict[str, str],
) -> None:
    url = f"https://x-access-token:{TOKEN}@git.example/org/app"
    done = run_changeflow("inventory", "add", *ENTRY, "--repository-url", url)
    _refused_without_the_token(done, "carries credentials")
    assert _refs(stack_env["CHANGEFLOW_INVENTORY_URL"]) == []


@contextmanager
def _open_umask() -> Iterator[None]:
    """Files made meanwhile would be world-readable unless created owner-only."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _no_chmod_of(paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every chmod of `paths`: owner-only must come from the creation, not after."""
    seen: list[str] = []
    real_chmod, real_path_chmod = os.chmod, Path.chmod
    names = {str(p) for p in paths}

    def chmod(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        if str(path) in names:
            seen.append(str(path))
        real_chmod(path, mode, *args, **kwargs)

    def path_chmod(self: Path, mode: int, **kwargs: Any) -> None:
        if str(self) in names:
            seen.append(str(self))
        real_path_chmod(self, mode, **kwargs)

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(Path, "chmod", path_chmod)
    return seen


def test_the_local_stacks_secret_files_are_owner_only_from_their_creation(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "stack"
    files = [root / "stack.json", root / "seaweedfs" / "s3-identities.json"]
    chmods = _no_chmod_of(files, monkeypatch)
    with _open_umask():
        stack = LocalStack(root).start(prefect_api_url=prefect_api)
    try:
        for path in files:
            assert _mode(path) == 0o600, path
        assert stack.env["CHANGEFLOW_S3_SECRET_KEY"] in files[0].read_text()
        assert stack.env["CHANGEFLOW_S3_SECRET_KEY"] in files[1].read_text()
        assert chmods == []
    finally:
        stack.stop()


def test_a_secret_file_left_readable_is_restricted_before_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, '{"secret": "new"}')
    assert _mode(path) == 0o600 and path.read_text() == '{"secret": "new"}'
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(OSError):
        write_private(link, "secret")  # never written through a planted symlink
    assert not (tmp_path / "elsewhere.json").exists()


def test_a_mirror_keeps_its_token_owner_only_and_out_of_its_messages(tmp_path: Path) -> None:
    # port 9 (discard) refuses the connection: a fetch fails at once
    url = f"https://bot:{TOKEN}@127.0.0.1:9/org/inventory.git"
    with _open_umask():
        mirror = GitMirror(url, tmp_path / "cache", timeout=30)
    config = mirror.path / "config"
    assert TOKEN in config.read_text()  # where git reads it from
    assert _mode(config) == 0o600 and _mode(mirror.path) == 0o700
    assert TOKEN not in repr(mirror)
    with pytest.raises(GitError) as failed:
        mirror.fetch()
    assert TOKEN not in str(failed.value)

    # a mirror an older version left readable is restricted when it is next opened
    config.chmod(0o644)
    GitMirror(url, tmp_path / "cache")
    assert _mode(config) == 0o600


def test_the_change_request_link_carries_no_credentials(tmp_path: Path) -> None:
    changes = GitChangeManagement(
        remote_url=f"https://bot:{TOKEN}@git.example/org/changes.git", cache_dir=str(tmp_path)
    )
    cr = ChangeRequest(id="CHG0000001", environment="prod", region="r1", deployment_run_id="d")
    link = changes.link(cr)
    assert TOKEN not in link and link.startswith("https://***@git.example/")


def test_deploy_command_on_the_cli_is_recorded_and_is_no_run_parameter(
    deployable: Callable[..., Path], tmp_path: Path
) -> None:
    deployable()
    runs = tmp_path / "local-runs.txt"
    command = f"sh -c 'echo $CHANGEFLOW_CHANGE_REQUEST >> {runs}'"
    done = run_changeflow(
        "deploy", "--environment", "prod", "--region", "r1", "--command", command, "--json"
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert runs.read_text().split() == [outcome["change_request"]]
    from blocks import stores as config

    cr = config.change_management(None).get(outcome["change_request"])
    assert cr.deploy_command == ["sh", "-c", f"echo $CHANGEFLOW_CHANGE_REQUEST >> {runs}"]
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(cr.deployment_run_id.removeprefix("deploy-")))
    assert run.parameters["request"] == {
        "environment": "prod", "region": "r1", "force": False, "emergency": False,
        "change_request": "",
    }  # fmt: skip


def test_the_readmes_credential_helper_gives_git_the_workers_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's way: the token in the worker's environment, the URL without it."""
    import shlex
    import subprocess

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("git config --global credential.")
    command = readme[start : readme.index("\n", readme.index("\n", start) + 1)]
    words = shlex.split(command.replace("\\\n", " "))  # the shell's line continuation
    assert words[:3] == ["git", "config", "--global"]
    key, helper = words[3], words[4]
    monkeypatch.setenv("CHANGEFLOW_GIT_TOKEN", TOKEN)
    done = subprocess.run(
        ["git", "-c", f"{key}={helper}", "credential", "fill"],
        input="protocol=https\nhost=git.example.com\npath=org/app.git\n\n",
        capture_output=True, text=True, check=True, timeout=30,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert f"password={TOKEN}" in done.stdout.splitlines()
