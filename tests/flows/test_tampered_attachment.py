"""A report changed in the locker after it was recorded is found at deploy time (issue 14).

Real stack: SeaweedFS with Object Lock (which keeps every version but lets anyone with write
access put a new latest one), git remotes and a Prefect server. The deploy re-hashes the
attachments of the evidence its CR relies on: the run files a CR that is not ready, saying
which record no longer verifies, instead of stopping without one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from blocks import stores as config
from changeflow.evidence import make_evidence
from changeflow.models import Asset, InventoryEntry, Promotion
from changeflow.readiness import DEFAULT_REQUIRED_TYPES
from changeflow.requests import DeploymentRequest, RecordStores
from flows.deploy_flow import deploy


def test_a_tampered_attachment_yields_a_change_request_that_is_not_ready(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locker, inventory = config.evidence_locker(None), config.inventory(None)
    stored = locker.store_attachment_bytes(b"artifact bytes of app/bin", "app.bin")
    artifact = Asset.for_uri(f"artifact://app/bin@{stored.hash}")
    report = locker.store_attachment_bytes(b'<testsuite tests="1" failures="0"/>', "junit.xml")
    records = []
    for i, kind in enumerate(DEFAULT_REQUIRED_TYPES):
        evidence = make_evidence(
            evidence_type_id=kind, result="success", tool="t", scope="ci-1", assets=[artifact],
            attachments=[report] if i == 0 else [],
        )  # fmt: skip
        records.append(locker.put_evidence(evidence, [artifact]))
    inventory.add_entries(
        [
            InventoryEntry(
                name="app/bin", artifact=stored.url, version="1", type="file",
                sha256=stored.hash, repository_url="https://example.com/app",
                commit_sha="c" * 40, build_number="1", pipeline_run_id="ci-1",
                provenance=artifact.uri, app_artifacts={"filename": "app.bin"},
            )
        ]
    )  # fmt: skip
    inventory.promote(
        Promotion(id="p1", source="master", target="prod", assigned_to="rm", description="d",
                  backout_plan="b")
    )  # fmt: skip
    # a passing unit-test report rewritten to hide something: a new latest version of its key
    key = locker.layout.attachment(report.hash)
    locker.client.put_object(Bucket=locker.bucket, Key=key, Body=b"<testsuite tests='0'/>")
    environments = tmp_path / "environments.toml"
    runs = tmp_path / "deploys.txt"
    environments.write_text(
        '[environments.prod]\nregions = ["r1"]\napproval_timeout_s = 1\n'
        f"deploy = [\"{sys.executable}\", \"-c\", \"open(r'{runs}', 'a').write('x')\"]\n"
    )
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))

    outcome = deploy(DeploymentRequest(environment="prod", region="r1"), RecordStores.from_env())

    assert outcome.change_request is not None, outcome.message
    cr = config.change_management(None).get(outcome.change_request)
    assert not cr.deployment_ready and outcome.state == "cancelled"
    [reason] = [r for r in cr.readiness_reasons if "does not verify" in r]
    assert f"evidence {records[0].id}" in reason and report.hash.removeprefix("sha256:") in reason
    assert not runs.exists()  # nobody approved it: nothing was deployed
