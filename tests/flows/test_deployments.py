"""prefect.yaml: every deployment loads, validates, and is what `changeflow serve` registers."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.schema_tools import validate
from stack_support import register_deployment, run_changeflow

from changeflow.errors import BadInput
from changeflow.project import load_environments
from cli.serve import deployment_specs, runner_deployments, schedules_outside_windows

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "prefect.yaml"
SPECS = deployment_specs(PROJECT)
# what `prefect.serve` registers: the prefect.yaml of the checkout, through the `changeflow` CLI
# (the serve command is imported first, so this holds before and after the CLI lists it)
SERVE = [
    sys.executable,
    "-c",
    "import cli.serve; from cli import main; main()",
]


def _flow(spec: dict[str, Any]) -> Any:
    file, _, function = spec["entrypoint"].rpartition(":")
    return load_flow_from_entrypoint(f"{ROOT / file}:{function}")


def test_prefect_yaml_lists_every_flow_and_place() -> None:
    data = yaml.safe_load(PROJECT.read_text())
    assert data["name"] == "changeflow"
    entrypoints = {s["entrypoint"] for s in SPECS}
    assert entrypoints == {
        "flows/ci_flow.py:ci",
        "flows/promote_flow.py:promote",
        "flows/deploy_flow.py:deploy",
        "flows/audit_flow.py:verify",
    }
    places = {
        (s["parameters"]["request"]["environment"], s["parameters"]["request"]["region"])
        for s in SPECS
        if s["entrypoint"].endswith(":deploy")
    }
    assert places == {("staging", "us-south"), ("prod", "us-south"), ("prod", "eu-de")}
    assert len({s["name"] for s in SPECS}) == len(SPECS)
    for spec in SPECS:
        assert spec["work_pool"]["name"] == "changeflow", spec["name"]
    for spec in SPECS:
        if spec["entrypoint"].endswith((":deploy", ":verify")):
            assert spec["schedules"] and all(s["cron"] and s["timezone"] for s in spec["schedules"])
    assert "must match the change" in PROJECT.read_text().lower()


@pytest.mark.parametrize("spec", SPECS, ids=[s["name"] for s in SPECS])
def test_entrypoint_imports_and_parameters_validate(spec: dict[str, Any]) -> None:
    flow = _flow(spec)
    params = spec.get("parameters") or {}
    unknown = set(params) - set(flow.parameters.properties)
    assert not unknown, f"{spec['name']}: {unknown} are not parameters of {flow.name}"
    schema = flow.parameters.model_dump(mode="json")
    if spec.get("schedules"):
        # a scheduled run gets nothing but these: every required parameter must be there
        errors = validate(params, schema, ignore_required=False)
        assert not errors, [e.message for e in errors]
        validated = flow.validate_parameters(params)
        assert set(params) <= set(validated)
    else:
        # started by a person or a webhook that supplies the rest
        errors = validate(params, schema, ignore_required=True)
        assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("spec", SPECS, ids=[s["name"] for s in SPECS])
def test_a_served_flow_still_knows_its_parameter_types(spec: dict[str, Any]) -> None:
    """`changeflow serve` pickles each flow by value into the process that runs it, without its
    module's globals, so a flow's parameter types must be objects, not postponed annotations."""
    served = cloudpickle.loads(cloudpickle.dumps(_flow(spec)))
    postponed = [name for name, hint in served.fn.__annotations__.items() if isinstance(hint, str)]
    assert postponed == [], f"{spec['entrypoint']}: drop `from __future__ import annotations`"
    if spec.get("schedules"):
        assert set(spec["parameters"]) <= set(served.validate_parameters(spec["parameters"]))


def test_a_bad_parameter_does_not_validate() -> None:
    spec = next(s for s in SPECS if s["name"] == "master-to-staging")
    flow = _flow(spec)
    schema = flow.parameters.model_dump(mode="json")
    bad = {"request": {**spec["parameters"]["request"], "priority": "whenever"}}
    assert validate(bad, schema, ignore_required=False)
    with pytest.raises(Exception, match="priority"):
        flow.validate_parameters(bad)


def test_serve_builds_the_same_deployments() -> None:
    built = runner_deployments(PROJECT)
    assert [(d.flow_name, d.name) for d in built] == [(_flow(s).name, s["name"]) for s in SPECS]
    by_name = {d.name: d for d in built}
    eu = by_name["prod-eu-de"]
    assert eu.parameters == {"request": {"environment": "prod", "region": "eu-de"}}
    assert [(s.schedule.cron, s.schedule.timezone) for s in eu.schedules] == [
        ("0 7 * * 2,4", "Europe/Berlin")
    ]
    assert eu.entrypoint == "flows/deploy_flow.py:deploy" or eu.entrypoint.endswith(
        "flows/deploy_flow.py:deploy"
    )


def test_serve_registers_every_deployment(prefect_api: str, tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "WARNING"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*SERVE, "serve", "--pause-schedules", "--file", str(PROJECT)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        names = {f"{_flow(s).name}/{s['name']}": s for s in SPECS}
        found: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while set(found) != set(names):
                assert server.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, (sorted(found), log.read_text()[-3000:])
                for name in set(names) - set(found):
                    with contextlib.suppress(ObjectNotFound):
                        found[name] = client.read_deployment_by_name(name)
                time.sleep(0.5)
        for name, spec in names.items():
            deployment = found[name]
            assert deployment.parameters == (spec.get("parameters") or {}), name
            assert sorted(deployment.tags) == sorted(spec["tags"]), name
            crons = sorted((s.schedule.cron, s.schedule.timezone) for s in deployment.schedules)
            assert crons == sorted((s["cron"], s["timezone"]) for s in spec.get("schedules", []))
            assert all(not s.active for s in deployment.schedules), name
        assert "serving 8 deployments" in log.read_text()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_serve_refuses_an_unknown_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = run_changeflow("serve", "--deployment", "nope", "--file", str(PROJECT))
    assert done.returncode == 2, done.stderr
    assert "no deployment named nope" in done.stderr


def test_prefect_deploy_all_accepts_the_file(prefect_api: str) -> None:
    """The real `prefect deploy --all` registers the same deployments for the work pool."""
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "CHANGEFLOW_PROJECT_DIR": str(ROOT),
        "CHANGEFLOW_ENVIRONMENTS": str(ROOT / "examples" / "environments.toml"),
    }
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    pool = subprocess.run(
        [*prefect, "work-pool", "create", "changeflow", "--type", "process", "--overwrite"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert pool.returncode == 0, pool.stdout + pool.stderr
    done = subprocess.run(
        [*prefect, "deploy", "--all", "--prefect-file", str(PROJECT)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    from prefect import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("deploy/prod-us-south")
    assert deployment.work_pool_name == "changeflow"
    assert deployment.entrypoint == "flows/deploy_flow.py:deploy"
    assert deployment.global_concurrency_limit is not None
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]
    # the run form offers the environments file's places, as `changeflow serve` registers them
    request = deployment.parameter_openapi_schema["definitions"]["DeploymentRequest"]
    assert request["properties"]["environment"]["enum"] == ["prod", "staging"]
    assert request["properties"]["region"]["enum"] == ["eu-de", "us-south"]
    assert deployment.enforce_parameter_schema


def test_the_api_refuses_a_run_for_a_place_the_project_does_not_deploy_to(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong environment or region in the run form is refused with the reason, no run made."""
    import httpx
    from prefect import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    # its schedules are paused: the runs below are the only ones the server could make
    deployment_id = register_deployment(
        "staging-us-south", tmp_path, monkeypatch, as_name=f"staging-us-south-{tmp_path.name}"
    )

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
        schema = deployment.parameter_openapi_schema
        request = schema["definitions"]["DeploymentRequest"]
        assert request["properties"]["environment"]["enum"] == ["prod", "staging"]
        reasons = {}
        for environment, region in [("qa", "us-south"), ("staging", "eu-de")]:
            with pytest.raises(PrefectHTTPStatusError) as refused:
                client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters={"request": {"environment": environment, "region": region}},
                )
            assert refused.value.response.status_code == 409
            reasons[environment] = refused.value.response.json()["detail"]
        # what the UI's form asks the API while a person fills it in
        form = httpx.post(
            f"{prefect_api}/ui/schemas/validate",
            json={"schema": schema, "values": {"request": {"environment": "staging",
                                                           "region": "eu-de"}}},
            timeout=30,
        )  # fmt: skip
        form.raise_for_status()
        refused_runs = client.read_flow_runs(
            deployment_filter=_deployment_filter(deployment_id), limit=10
        )
        accepted = client.create_flow_run_from_deployment(deployment_id)
    assert reasons == {
        "qa": "Error creating flow run: Validation failed for field 'request.environment'. "
        "Failure reason: 'qa' is not one of ['prod', 'staging']",
        "staging": "Error creating flow run: Validation failed for field 'request.region'. "
        "Failure reason: 'eu-de' is not one of ['us-south']",
    }
    assert form.json()["valid"] is False
    assert "'eu-de' is not one of ['us-south']" in form.text
    assert refused_runs == []
    assert accepted.parameters == {"request": {"environment": "staging", "region": "us-south"}}


def _deployment_filter(deployment_id: Any) -> Any:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))


EXAMPLE_ENVIRONMENTS = ROOT / "examples" / "environments.toml"


def test_the_shipped_schedules_start_inside_the_shipped_change_windows() -> None:
    environments = load_environments(EXAMPLE_ENVIRONMENTS)
    assert schedules_outside_windows(SPECS, environments) == []
    deployed = {
        (s["parameters"]["request"]["environment"], s["parameters"]["request"]["region"])
        for s in SPECS
        if s["entrypoint"].endswith(":deploy")
    }
    assert deployed == {(e, r) for e, spec in environments.environments.items()
                        for r in spec.regions}  # fmt: skip


def test_a_schedule_outside_its_change_window_is_refused(tmp_path: Path) -> None:
    text = EXAMPLE_ENVIRONMENTS.read_text()
    # 15:00 in Dallas is 22:00 in Frankfurt, but 21:00 in the weeks the clocks change apart
    narrow = tmp_path / "environments.toml"
    narrow.write_text(text.replace('start = "20:30"', 'start = "21:30"'))
    [problem] = schedules_outside_windows(SPECS, load_environments(narrow))
    assert problem.startswith("prod-us-south: `0 15 * * 2,4` (America/Chicago) starts at ")
    assert "21:00 Europe/Berlin, outside the change windows of prod (" in problem
    # only the weeks between the two daylight-saving changes
    weeks = re.search(r"\((\d+) of (\d+) starts in 366 days\)", problem)
    assert weeks and 0 < int(weeks[1]) < 12 and int(weeks[2]) > 100, problem

    late = tmp_path / "prefect.yaml"
    late.write_text(PROJECT.read_text().replace('"0 7 * * 2,4"', '"0 10 * * 2,4"'))
    env = {**os.environ, "CHANGEFLOW_ENVIRONMENTS": str(EXAMPLE_ENVIRONMENTS)}
    refused = run_changeflow("serve", "--check", "--file", str(late), env=env)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "prod-eu-de: `0 10 * * 2,4` (Europe/Berlin) starts at" in refused.stderr
    checked = run_changeflow("serve", "--check", "--file", str(PROJECT), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "8 deployments load; every deploy schedule starts inside its change windows" in (
        checked.stdout
    )


def test_a_deployment_for_a_place_the_project_lacks_is_refused(tmp_path: Path) -> None:
    only_staging = tmp_path / "environments.toml"
    only_staging.write_text(EXAMPLE_ENVIRONMENTS.read_text().split("[environments.prod]")[0])
    with pytest.raises(BadInput, match="unknown environment 'prod'"):
        schedules_outside_windows(SPECS, load_environments(only_staging))
