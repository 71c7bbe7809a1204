"""The ci flow's incidents: due after the strictest grace periods the environments file sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blocks.source import commit_all
from blocks.stores import open_stores
from changeflow.incidents import GracePeriods
from changeflow.models import Severity
from changeflow.requests import BuildRequest, RecordStores
from cli.demo import sample_app_dir
from cli.local_stack import init_bare_repo
from flows.ci_flow import ci

ENVIRONMENTS = """
[environments.staging]
regions = ["us-south"]
[environments.staging.grace_periods]
high = 5
[environments.prod]
regions = ["us-south"]
[environments.prod.grace_periods]
critical = 1
high = 2
medium = 120
"""


def test_incidents_are_due_after_the_strictest_grace_periods_configured(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "sample-app"
    shutil.copytree(sample_app_dir(), app, ignore=shutil.ignore_patterns("dist", "reports"))
    (app / "tests" / "test_farewell.py").write_text(
        "from sample_app import greet\n\n\ndef test_says_goodbye():\n"
        '    assert greet("Ada") == "Goodbye, Ada!"\n'
    )
    repo_url = init_bare_repo(tmp_path / "remotes" / "sample-app.git")
    sha = commit_all(app, "sample-app with a failing test", repo_url)
    environments = tmp_path / "environments.toml"
    environments.write_text(ENVIRONMENTS)
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))

    result = ci(BuildRequest(repo_url=repo_url, commit_sha=sha), RecordStores.from_env())

    assert "unit-tests" in result.failed_checks
    incidents = open_stores(RecordStores.from_env()).incidents.incidents()
    # master feeds staging and prod: each severity takes the shorter of their grace periods
    strictest = GracePeriods(critical=1, high=2, medium=90)
    assert any(i.severity is Severity.high for i in incidents), incidents
    for incident in incidents:
        assert incident.due == strictest.due(incident.severity, incident.found), incident
