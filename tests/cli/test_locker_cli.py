"""`changeflow locker check` against a real SeaweedFS."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from stack_support import S3Server, new_bucket, run_changeflow

from cli.local_stack import free_port


def changeflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_changeflow(*args, env={**os.environ, **env})


def _env(s3_server: S3Server, bucket: str) -> dict[str, str]:
    return {
        "CHANGEFLOW_S3_ENDPOINT": s3_server.endpoint,
        "CHANGEFLOW_S3_BUCKET": bucket,
        "CHANGEFLOW_S3_ACCESS_KEY": s3_server.access_key,
        "CHANGEFLOW_S3_SECRET_KEY": s3_server.secret_key,
    }


def test_a_locked_bucket_passes(s3_server: S3Server) -> None:
    bucket = new_bucket()
    s3_server.locker(bucket).create_bucket()  # the CLI's defaults: COMPLIANCE, 365 days
    done = changeflow(_env(s3_server, bucket), "locker", "check", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["versioned"] and result["locked"] and result["retention_ok"]
    assert result["retention_days"] == 365 and result["retention_mode"] == "COMPLIANCE"
    human = changeflow(_env(s3_server, bucket), "locker", "check")
    assert human.returncode == 0 and human.stdout.strip().endswith("ok")
    assert s3_server.secret_key not in done.stdout + done.stderr + human.stdout + human.stderr


def test_short_retention_fails(s3_server: S3Server) -> None:
    bucket = new_bucket()
    s3_server.locker(bucket, retention_days=30).create_bucket()  # default rule: 30 days
    done = changeflow(_env(s3_server, bucket), "locker", "check", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["versioned"] and result["locked"]
    assert result["retention_days"] == 30 and result["required_days"] == 365
    assert not result["retention_ok"] and not result["ok"]


def test_an_unlocked_bucket_fails(s3_server: S3Server) -> None:
    bucket = new_bucket()
    s3_server.locker(bucket).client.create_bucket(Bucket=bucket)
    done = changeflow(_env(s3_server, bucket), "locker", "check")
    assert done.returncode == 1
    assert "versioned: no" in done.stdout and "object lock: no" in done.stdout
    assert "NOT OK" in done.stdout


def test_a_bucket_that_does_not_exist_is_bad_input(s3_server: S3Server) -> None:
    bucket = new_bucket()
    done = changeflow(_env(s3_server, bucket), "locker", "check")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bucket!r} does not exist" in lines[0], done.stderr
    assert done.stdout == ""


def test_missing_bucket_setting_is_bad_input() -> None:
    done = changeflow({"CHANGEFLOW_S3_BUCKET": ""}, "locker", "check")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CHANGEFLOW_S3_BUCKET" in lines[0]
    assert done.stdout == ""


@pytest.mark.timeout(120)
def test_an_unreachable_store_is_one_line_and_exit_1(s3_server: S3Server) -> None:
    env = _env(s3_server, new_bucket())
    env["CHANGEFLOW_S3_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    done = changeflow(env, "locker", "check")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
