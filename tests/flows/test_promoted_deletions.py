"""A deletion reaches prod (issue 14), on the real stack: SeaweedFS, bare git remotes, Prefect.

An entry removed from master is promoted to prod as a deletion; the next prod deploy receives
it in `CHANGEFLOW_DELETIONS_PATH` and its CR lists it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stack_support import run_changeflow, ship_to_prod

from blocks import stores as config
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
    first = deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())
    assert first.close_category == CloseCategory.successful.value
    assert json.loads(received.read_text()) == []
    inventory = config.inventory(None)

    master = inventory.resolve("master")
    for bad in (("../etc",), ("app/old", "--environment", "no-such-branch")):
        refused = run_changeflow("inventory", "remove", *bad)
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert inventory.resolve("master") == master  # nothing written
    removed = run_changeflow("inventory", "remove", "app/old")
    assert removed.returncode == 0, removed.stderr
    promoted = run_changeflow(*_PROMOTE)

    assert promoted.returncode == 0, promoted.stderr
    record = inventory.promotion("prod")
    assert record is not None and (record.entries, record.deletions) == ([], ["app/old"])
    assert sorted(inventory.entries("prod")) == ["app/bin"]

    second = deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())

    assert second.change_request is not None
    assert json.loads(received.read_text()) == ["app/old"]
    cr = config.change_management(None).get(second.change_request)
    assert cr.deletions == ["app/old"] and cr.delta == []
    assert "- deleted: `app/old`" in run_changeflow("cr", "get", cr.id).stdout
