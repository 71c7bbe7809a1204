"""Issue #11, findings 1 and 3: the pipeline's credentials stay with the pipeline, and a run's
parameters never choose the deploy command or the policy.

On the real stack: the build and check commands of an application and the deploy command of an
environment dump the environment they run with; runs are created through the Prefect API.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.blocks.system import Secret
from prefect.exceptions import PrefectHTTPStatusError
from stack_support import register_deployment, ship_to_prod

from blocks import stores as config
from blocks.source import commit_all
from changeflow.canonical import canonical_json, digest
from changeflow.render import render_change_request
from changeflow.requests import BuildRequest, DeploymentRequest, RecordStores
from cli.local_stack import init_bare_repo
from flows.ci_flow import ci
from flows.deploy_flow import deploy

# what a hostile command does: print everything it was given into a file
DUMP = (
    "import json, os, pathlib, sys; "
    "pathlib.Path(sys.argv[1]).write_text(json.dumps(dict(os.environ)))"
)
# the worker's credentials, beside the CHANGEFLOW_* ones the stack sets
WORKER_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-" + uuid.uuid4().hex,
    "GITHUB_TOKEN": "ghp_" + uuid.uuid4().hex,
    "PREFECT_API_KEY": "pnu_" + uuid.uuid4().hex,
}
DEPLOY_INPUTS = {
    "CHANGEFLOW_ENVIRONMENT",
    "CHANGEFLOW_REGION",
    "CHANGEFLOW_CHANGE_REQUEST",
    "CHANGEFLOW_DELTA_PATH",
    "CHANGEFLOW_DELETIONS_PATH",
    "CHANGEFLOW_ENTRIES_PATH",
    "CHANGEFLOW_ARTIFACTS_DIR",
}


@pytest.fixture
def worker_secrets(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every secret the worker's process holds: the stack's, Prefect's and a forge's."""
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert os.environ["PREFECT_API_URL"]  # the suite's server: Prefect's own configuration
    return [
        stack_env["CHANGEFLOW_S3_SECRET_KEY"],
        stack_env["CHANGEFLOW_INVENTORY_URL"],
        stack_env["CHANGEFLOW_CHANGE_REPO_URL"],
        os.environ["PREFECT_API_URL"],
        *WORKER_SECRETS.values(),
    ]


def _leaks(env: dict[str, str], secrets: list[str]) -> list[str]:
    """The variables of `env` that carry one of the pipeline's credentials or settings."""
    named = [k for k in env if k.startswith(("CHANGEFLOW_S3_", "AWS_", "PREFECT_")) or "TOKEN" in k]
    valued = [k for k, v in env.items() if any(s in v for s in secrets)]
    return sorted(set(named + valued))


def test_build_and_check_commands_find_none_of_the_pipelines_secrets(
    worker_secrets: list[str], tmp_path: Path
) -> None:
    build_env, check_env = tmp_path / "build-env.json", tmp_path / "check-env.json"
    app = tmp_path / "app"
    app.mkdir()
    python = sys.executable
    make = "import pathlib; p = pathlib.Path('dist'); p.mkdir(); (p / 'app.bin').write_text('x')"
    junit = '<testsuite name="t" tests="1"><testcase name="ok"/></testsuite>'
    (app / "changeflow.toml").write_text(
        'name = "dumper"\n'
        f"build = {json.dumps([python, '-c', make + '; ' + DUMP, str(build_env)])}\n"
        '[[artifacts]]\nname = "bin"\nglob = "dist/app.bin"\n'
        '[[checks]]\nname = "unit-tests"\nformat = "junit"\nreport = "junit.xml"\nstdout = true\n'
        'evidence_type = "com.ibm.unit_tests"\ntool = "dump"\n'
        f"command = {json.dumps([python, '-c', DUMP + f'; print({junit!r})', str(check_env)])}\n"
    )
    repo_url = init_bare_repo(tmp_path / "remotes" / "app.git")
    sha = commit_all(app, "an application whose commands dump their environment", repo_url)

    result = ci(BuildRequest(repo_url=repo_url, commit_sha=sha), RecordStores.from_env())

    assert result.recorded == ["dumper/bin"] and result.failed_checks == []
    for dumped in (build_env, check_env):
        env = json.loads(dumped.read_text())
        assert _leaks(env, worker_secrets) == [], dumped.name
        assert not [k for k in env if k.startswith("CHANGEFLOW_")], dumped.name
        assert env["PATH"].split(":")[0] == str(Path(python).parent)
        assert env["HOME"] and env["TZ"] == "Europe/Berlin"


def _environments(path: Path, dump_to: Path, secret_block: str) -> Path:
    path.write_text(
        '[environments.prod]\nregions = ["r1"]\n'
        f"deploy = {json.dumps([sys.executable, '-c', DUMP, str(dump_to)])}\n"
        'pass_env = ["KUBECONFIG"]\n'
        f'[environments.prod.secrets]\nKUBE_TOKEN = "{secret_block}"\n'
    )
    return path


def _run_texts(flow_run_id: str) -> list[str]:
    """Every log line and artifact a flow run left in the Prefect API."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    run_id = uuid.UUID(flow_run_id)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return [log.message for log in logs] + [json.dumps(a.data) for a in artifacts]


def test_a_deploy_command_gets_its_inputs_and_what_its_environment_passes_nothing_else(
    worker_secrets: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_token, block = "kube-" + uuid.uuid4().hex, f"kube-token-{uuid.uuid4().hex[:8]}"
    Secret(value=kube_token).save(block)
    monkeypatch.setenv("KUBECONFIG", "/etc/kube/prod.yaml")
    dumped = tmp_path / "deploy-env.json"
    environments = _environments(tmp_path / "environments.toml", dumped, block)
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
    ship_to_prod(["app/bin"], "p1")

    outcome = deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())

    assert outcome.state == "closed" and outcome.close_category == "successful", outcome
    env = json.loads(dumped.read_text())
    assert _leaks({k: v for k, v in env.items() if k != "KUBE_TOKEN"}, worker_secrets) == []
    assert {k for k in env if k.startswith("CHANGEFLOW_")} == DEPLOY_INPUTS
    assert env["CHANGEFLOW_CHANGE_REQUEST"] == outcome.change_request
    assert env["KUBECONFIG"] == "/etc/kube/prod.yaml"  # passed by name
    assert env["KUBE_TOKEN"] == kube_token  # from the Secret block
    assert env["HOME"] and env["PATH"]

    # the secret's value is in no record, rendering, log line or artifact
    cr = config.change_management(None).get(outcome.change_request or "")
    texts = [cr.to_json().decode(), render_change_request(cr)]
    texts += _run_texts(cr.deployment_run_id.removeprefix("deploy-"))
    assert not [t for t in texts if kube_token in t]
    # the CR records the command that ran, the environments file and the policy in force
    assert cr.deploy_command == [sys.executable, "-c", DUMP, str(dumped)]
    assert cr.environments_sha256 == digest(environments.read_bytes())
    assert cr.policy["checks"] and cr.policy_digest == digest(canonical_json(cr.policy))
    rendered = render_change_request(cr)
    [command_row] = [line for line in rendered.splitlines() if line.startswith("| deploy command")]
    assert "deploy-env.json" in command_row and "pathlib.Path" in command_row
    assert cr.environments_sha256 in rendered and cr.policy_digest in rendered
    assert "com.ibm.unit_tests" in rendered.split("## Policy in force")[1]


def test_a_missing_secret_block_is_refused_before_anything_is_written(
    worker_secrets: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dumped = tmp_path / "deploy-env.json"
    environments = _environments(tmp_path / "environments.toml", dumped, "no-such-secret")
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
    ship_to_prod(["app/bin"], "p1")

    from changeflow.errors import BadInput

    with pytest.raises(BadInput, match="KUBE_TOKEN: no Secret block named 'no-such-secret'"):
        deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())
    assert config.change_management(None).list() == []
    assert not dumped.exists()


def _refused(deployment_id: uuid.UUID, parameters: dict[str, Any]) -> str:
    with get_client(sync_client=True) as client, pytest.raises(PrefectHTTPStatusError) as refused:
        client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
    assert refused.value.response.status_code == 409
    detail: str = refused.value.response.json()["detail"]
    return detail


def _runs_of(deployment_id: uuid.UUID) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        found: list[Any] = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    return found


def test_a_run_cannot_choose_the_deploy_command_or_the_environments_file(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the API (the UI's "Custom run"): `command` and `environments_file` are refused,
    no run is made, and the flow itself refuses them when called with them."""
    deployment_id = register_deployment(
        "staging-us-south", tmp_path, monkeypatch, as_name=f"staging-{tmp_path.name}"
    )
    permissive = tmp_path / "anything-goes.toml"
    permissive.write_text(
        '[environments.staging]\nregions = ["us-south"]\ndeploy = ["true"]\n'
        "[environments.staging.policy]\nchecks = []\n"
    )
    place = {"environment": "staging", "region": "us-south"}
    for extra in ({"command": ["sh", "-c", "id"]}, {"environments_file": str(permissive)}):
        detail = _refused(deployment_id, {"request": {**place, **extra}})
        assert "Additional properties are not allowed" in detail, detail
        with pytest.raises(Exception, match="Extra inputs are not permitted"):
            deploy({**place, **extra}, RecordStores.from_env())  # type: ignore[call-overload]
    assert _runs_of(deployment_id) == []


def test_a_run_cannot_carry_a_token_in_its_repo_url(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = register_deployment(
        "build", tmp_path, monkeypatch, as_name=f"build-{uuid.uuid4().hex[:8]}"
    )
    for url in ("https://bot:TOKEN123@git.example/org/app.git", "https://TOKEN123@git.example/a"):
        _refused(deployment_id, {"request": {"repo_url": url, "commit_sha": "a" * 40}})
    assert _runs_of(deployment_id) == []
    # a URL without credentials (the credential helper supplies them) is accepted
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            deployment_id,
            parameters={"request": {"repo_url": "https://git.example/org/app.git",
                                    "commit_sha": "a" * 40}},
        )  # fmt: skip
        client.delete_flow_run(run.id)
