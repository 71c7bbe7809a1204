"""The flows' parameters: validated models whose forms offer the project's environments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from changeflow.errors import BadInput
from changeflow.incidents import GracePeriods
from changeflow.models import Priority
from changeflow.requests import (
    AuditRequest,
    BuildRequest,
    DeploymentRequest,
    PromotionRequest,
    deployment_spec,
    project_environments,
)

ENVIRONMENTS = """
[environments.staging]
regions = ["us-south"]
deploy = ["true"]
[environments.prod]
regions = ["us-south", "eu-de"]
deploy = ["true"]
"""


@pytest.fixture
def environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "environments.toml"
    path.write_text(ENVIRONMENTS)
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(path))
    return path


def _errors(schema: dict[str, Any], value: dict[str, Any]) -> list[str]:
    return [e.message for e in Draft202012Validator(schema).iter_errors(value)]


def test_the_deployment_form_offers_the_projects_environments_and_regions(
    environments: Path,
) -> None:
    schema = DeploymentRequest.model_json_schema()
    assert schema["properties"]["environment"]["enum"] == ["prod", "staging"]
    assert schema["properties"]["region"]["enum"] == ["eu-de", "us-south"]
    assert _errors(schema, {"environment": "prod", "region": "eu-de"}) == []
    assert _errors(schema, {"environment": "qa", "region": "us-south"}) == [
        "'qa' is not one of ['prod', 'staging']"
    ]
    # each environment only deploys to its own regions
    assert _errors(schema, {"environment": "staging", "region": "eu-de"}) == [
        "'eu-de' is not one of ['us-south']"
    ]


def test_the_forms_follow_the_environments_file_when_it_changes(
    environments: Path,
) -> None:
    environments.write_text(ENVIRONMENTS + '[environments.qa]\nregions = ["lab"]\n')
    schema = DeploymentRequest.model_json_schema()
    assert schema["properties"]["environment"]["enum"] == ["prod", "qa", "staging"]
    assert PromotionRequest.model_json_schema()["properties"]["target"]["enum"] == [
        "prod",
        "qa",
        "staging",
    ]
    audit = AuditRequest.model_json_schema()["properties"]["environment"]
    assert audit["enum"] == ["", "prod", "qa", "staging"]  # empty: audit one CR instead


def test_without_an_environments_file_the_forms_take_free_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CHANGEFLOW_ENVIRONMENTS", raising=False)
    schema = DeploymentRequest.model_json_schema()
    assert "enum" not in schema["properties"]["environment"]
    assert "allOf" not in schema
    # an unreadable file leaves the choices to the flow's own check
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(tmp_path / "missing.toml"))
    assert "enum" not in DeploymentRequest.model_json_schema()["properties"]["region"]


def test_deployment_spec_checks_the_place_and_the_command(environments: Path) -> None:
    spec = deployment_spec(DeploymentRequest(environment="prod", region="eu-de"))
    assert spec.deploy == ["true"]
    with pytest.raises(BadInput, match="unknown region 'eu-de' for staging"):
        deployment_spec(DeploymentRequest(environment="staging", region="eu-de"))
    with pytest.raises(BadInput, match="unknown environment 'qa'"):
        deployment_spec(DeploymentRequest(environment="qa", region="us-south"))
    overridden = DeploymentRequest(environment="prod", region="us-south")
    assert deployment_spec(overridden, command=["deploy.sh"]).deploy == ["deploy.sh"]


def test_deployment_spec_needs_a_command_somewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHANGEFLOW_ENVIRONMENTS", raising=False)
    with pytest.raises(BadInput, match="no deploy command configured for prod/r1"):
        deployment_spec(DeploymentRequest(environment="prod", region="r1"))
    spec = deployment_spec(DeploymentRequest(environment="prod", region="r1"), command=["x"])
    assert spec.regions == ["r1"]


@pytest.mark.parametrize(
    ("model", "value", "reason"),
    [
        (BuildRequest, {"repo_url": "file:///a", "commit_sha": "abc"}, "commit_sha"),
        (DeploymentRequest, {"environment": "prod", "region": ""}, "region"),
        (
            DeploymentRequest,
            {"environment": "prod", "region": "r1", "change_request": "CR-1"},
            "change_request",
        ),
        (
            PromotionRequest,
            {
                "source": "staging",
                "target": "staging",
                "priority": Priority.low,
                "assigned_to": "rm",
                "description": "d",
                "backout_plan": "b",
            },
            "source and target must differ",
        ),
        (AuditRequest, {}, "give either an environment"),
        (AuditRequest, {"environment": "prod", "change_request": "CHG0000001"}, "give either"),
        (AuditRequest, {"region": "r1", "change_request": "CHG0000001"}, "needs its environment"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(
    model: type[Any], value: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        model.model_validate(value)


def test_the_deployment_form_reads_the_environments_file_once(
    environments: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import changeflow.requests as requests

    reads: list[Path] = []
    original = requests.load_environments

    def counted(path: Path) -> Any:
        reads.append(path)
        return original(path)

    monkeypatch.setattr(requests, "load_environments", counted)
    schema = DeploymentRequest.model_json_schema()
    assert schema["properties"]["region"]["enum"] == ["eu-de", "us-south"]
    assert len(schema["allOf"]) == 2
    assert reads == [environments]


def test_ci_takes_the_strictest_grace_periods_configured(
    environments: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environments.write_text(
        ENVIRONMENTS
        + "[environments.staging.grace_periods]\ncritical = 3\nlow = 100\n"
        + "[environments.prod.grace_periods]\ncritical = 5\nhigh = 7\n"
    )
    grace = project_environments().strictest_grace_periods()
    assert grace == GracePeriods(critical=3, high=7, medium=90, low=100, info=180)
    # no environments file: the default grace periods
    monkeypatch.delenv("CHANGEFLOW_ENVIRONMENTS")
    assert project_environments().strictest_grace_periods() == GracePeriods()
    environments.write_text("[environments.prod\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        project_environments(str(environments))
