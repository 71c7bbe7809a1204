"""Bad input at the CLI: exit 2, one line on stderr, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from git import Repo
from stack_support import run_changeflow

from blocks.evidence_locker import EvidenceLocker
from changeflow.settings import Settings

ASSET = "https://example.com/org/app#" + "a" * 40
ENTRY = [
    "--artifact", "s3://b/k", "--version", "1.0", "--sha256", "sha256:" + "b" * 64,
    "--type", "file", "--repository-url", "https://example.com/org/app",
    "--commit-sha", "a" * 40, "--build-number", "7", "--pipeline-run-id", "ci-1",
    "--provenance", "artifact://app@sha256:" + "b" * 64,
]  # fmt: skip


def executable(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `changeflow` executable: what a user's shell sees, exit code and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=120
    )


def changeflow(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command through `main()` in this process (the same contract, without paying
    Prefect's import for every case); two tests run the real executable."""
    return run_changeflow(*args)


def assert_bad_input(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0]


def bucket_keys(env: dict[str, str]) -> list[str]:
    locker = EvidenceLocker.from_settings(Settings.from_env(env))
    return locker._list("")


def remote_refs(url: str) -> list[str]:
    return [r.path for r in Repo(url.removeprefix("file://")).refs]


@pytest.fixture
def env(stack_env: dict[str, str]) -> dict[str, str]:
    return stack_env


def test_unknown_evidence_result(env: dict[str, str]) -> None:
    done = executable("evidence", "add", "--type", "com.ibm.unit_tests", "--result", "passed",
                      "--tool", "pytest", "--asset", ASSET)  # fmt: skip
    assert_bad_input(done, "passed")
    assert bucket_keys(env) == []


def test_a_bucket_that_does_not_exist(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGEFLOW_S3_BUCKET", "no-such-evidence-bucket")
    done = changeflow("evidence", "add", "--type", "com.ibm.unit_tests", "--result", "success",
                      "--tool", "pytest", "--asset", ASSET)  # fmt: skip
    assert_bad_input(done, "'no-such-evidence-bucket' does not exist")
    # refused before the first write, so the store did not make an unlocked bucket of it
    locker = EvidenceLocker.from_settings(Settings.from_env({**env, "CHANGEFLOW_S3_BUCKET": "x"}))
    assert "no-such-evidence-bucket" not in [
        b["Name"] for b in locker.client.list_buckets()["Buckets"]
    ]


def test_missing_attachment_file(env: dict[str, str], tmp_path: Path) -> None:
    present = tmp_path / "present.xml"
    present.write_text("<x/>")
    done = changeflow("evidence", "add", "--type", "com.ibm.unit_tests", "--result", "success",
                      "--tool", "pytest", "--asset", ASSET, "--attachment", str(present),
                      "--attachment", str(tmp_path / "missing.xml"))  # fmt: skip
    assert_bad_input(done, "attachment not found", "missing.xml")
    assert bucket_keys(env) == []


def test_malformed_sha256(env: dict[str, str]) -> None:
    args = [a if not a.startswith("sha256:") else "sha256:xyz" for a in ENTRY]
    done = changeflow("inventory", "add", "--name", "app/wheel", *args)
    assert_bad_input(done, "sha256")
    assert remote_refs(env["CHANGEFLOW_INVENTORY_URL"]) == []


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd"])
def test_entry_name_outside_the_inventory(env: dict[str, str], name: str) -> None:
    done = changeflow("inventory", "add", "--name", name, *ENTRY)
    assert_bad_input(done, "name")
    assert remote_refs(env["CHANGEFLOW_INVENTORY_URL"]) == []


def test_unknown_environment(env: dict[str, str], tmp_path: Path) -> None:
    environments = tmp_path / "environments.toml"
    environments.write_text('[environments.prod]\nregions = ["us-south"]\ndeploy = ["true"]\n')
    done = changeflow("deploy", "--environment", "qa", "--region", "us-south",
                      "--environments", str(environments))  # fmt: skip
    assert_bad_input(done, "unknown environment 'qa'")
    assert remote_refs(env["CHANGEFLOW_CHANGE_REPO_URL"]) == []


def test_unknown_environment_without_a_file_is_unknown_to_the_inventory(
    env: dict[str, str],
) -> None:
    done = changeflow("inventory", "get", "app/wheel", "--environment", "nowhere")
    assert_bad_input(done, "unknown environment 'nowhere'")


def test_missing_required_option_is_one_line() -> None:
    done = executable("evidence", "add", "--type", "x")
    assert_bad_input(done)


def test_unknown_change_request(env: dict[str, str]) -> None:
    done = changeflow("cr", "approve", "CHG9999999", "--by", "someone")
    assert_bad_input(done, "unknown change request CHG9999999")
    done = changeflow("cr", "approve", "CHG9999999", "--by", " ")
    assert_bad_input(done, "--by")


PROMOTION = ["--priority", "low", "--assigned-to", "rm", "--description", "d",
             "--backout-plan", "b"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ci", "--repo", "file:///app.git", "--commit", "abc123"], "invalid commit_sha"),
        (["promote", "--source", "staging", "--target", "staging", *PROMOTION],
         "source and target must differ"),
        (["deploy", "--environment", "prod", "--region", "us-south", "--change-request", "CR-1"],
         "invalid change_request"),
        (["verify"], "give either an environment"),
        (["verify", "--region", "us-south", "--change-request", "CHG0000001"],
         "a region needs its environment"),
    ],
)  # fmt: skip
def test_a_flow_request_that_does_not_validate(
    env: dict[str, str], args: list[str], needle: str
) -> None:
    """The flows' own parameter models refuse it before any run starts."""
    done = changeflow(*args)
    assert_bad_input(done, needle)
    assert remote_refs(env["CHANGEFLOW_CHANGE_REPO_URL"]) == []
    assert remote_refs(env["CHANGEFLOW_INVENTORY_URL"]) == []
