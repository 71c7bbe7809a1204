"""A Prefect server that requires authentication: `dev up --auth`, and the CLI's flows on it.

Issue #11, finding 12: the flows work against a server with `PREFECT_SERVER_API_AUTH_STRING`
when the client sends `PREFECT_API_AUTH_STRING`, and a client without it is refused before a
run exists. Also finding 11 on the stack `dev up` makes: a clone of its change repo shows the
CR the deployment filed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stack_support import ship_to_prod

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]


def changeflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _clean_env() -> dict[str, str]:
    """This process's environment without any stack's variables (the suite's server included)."""
    drop = ("CHANGEFLOW_", "PREFECT_API_URL", "PREFECT_API_AUTH_STRING")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`changeflow dev up --auth` in a folder of its own: the variables it exports."""
    base = _clean_env() | {"CHANGEFLOW_HOME": str(tmp_path / "home")}
    where = str(tmp_path / "stack")
    up = changeflow("dev", "up", "--auth", "--dir", where, env=base)
    try:
        assert up.returncode == 0, up.stderr
        exported = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1)
            for line in up.stdout.splitlines()
            if line.startswith("export ")
        )
        yield base | exported
    finally:
        changeflow("dev", "down", "--dir", where, env=base)


def test_the_cli_deploys_against_a_server_that_requires_authentication(
    stack: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, auth = stack["PREFECT_API_URL"], stack["PREFECT_API_AUTH_STRING"]
    # the server refuses a client without the string, and answers one with it
    assert httpx.post(f"{api}/flows/filter", json={}).status_code == 401
    assert httpx.post(f"{api}/flows/filter", json={}, auth=tuple(auth.split(":", 1))).is_success

    # dev up made the stack's own signing keys and trust file (cli/keys.py); ship_to_prod
    # writes unsigned evidence, as an unsigned locker does, so this run leaves them out
    signing = ("CHANGEFLOW_CI_SIGNING_KEY_FILE", "CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE")
    for key in (*signing, "CHANGEFLOW_TRUST_FILE"):
        assert Path(stack.pop(key)).is_file()
    for key, value in stack.items():
        if key.startswith("CHANGEFLOW_"):
            monkeypatch.setenv(key, value)
    ship_to_prod(["app/bin"], "p1")
    runs = tmp_path / "deploys.txt"
    environments = tmp_path / "environments.toml"
    environments.write_text(
        '[environments.prod]\nregions = ["r1"]\n'
        f'deploy = ["sh", "-c", "echo $CHANGEFLOW_CHANGE_REQUEST >> {runs}"]\n'
    )
    env = stack | {"CHANGEFLOW_ENVIRONMENTS": str(environments)}

    refused = changeflow(
        "deploy", "--environment", "prod", "--region", "r1",
        env={k: v for k, v in env.items() if k != "PREFECT_API_AUTH_STRING"},
    )  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    assert "401" in refused.stderr and "PREFECT_API_AUTH_STRING" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not runs.exists()
    changes = stack["CHANGEFLOW_CHANGE_REPO_URL"].removeprefix("file://")
    listed = subprocess.run(
        ["git", "--git-dir", changes, "for-each-ref"], capture_output=True, text=True, check=True
    )
    assert listed.stdout == ""  # nothing filed

    done = changeflow("deploy", "--environment", "prod", "--region", "r1", "--json", env=env)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["close_category"] == "successful"
    assert runs.read_text().split() == [outcome["change_request"]]

    # an auditor's first step: a clone of the change repo shows the CR
    subprocess.run(["git", "clone", "--quiet", changes, str(tmp_path / "audit")], check=True)
    assert (tmp_path / "audit" / "changes" / f"{outcome['change_request']}.json").is_file()
