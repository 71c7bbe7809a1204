"""The environment a build, check or deploy command runs with: an allow-list, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

from blocks.commands import command_environment, run_command

WORKER = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/worker",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "TMPDIR": "/tmp",
    "KUBECONFIG": "/etc/kube/config",
    "CHANGEFLOW_S3_SECRET_KEY": "s3-secret",
    "CHANGEFLOW_INVENTORY_URL": "https://bot:t@git.example/inv.git",
    "PREFECT_API_URL": "http://127.0.0.1:4200/api",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "GITHUB_TOKEN": "ghp_x",
    "SSH_AUTH_SOCK": "/run/agent.sock",
}


def test_only_the_allow_list_the_passed_names_and_the_steps_inputs() -> None:
    env = command_environment({"CHANGEFLOW_REGION": "r1"}, worker=WORKER)
    assert env == {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": "/home/worker",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "CHANGEFLOW_REGION": "r1",
    }
    passed = command_environment(pass_env=["KUBECONFIG"], worker=WORKER)
    assert passed["KUBECONFIG"] == "/etc/kube/config" and "GITHUB_TOKEN" not in passed


def test_a_command_finds_the_interpreters_tools_first(tmp_path: Path) -> None:
    done = run_command(["python", "-c", "import sys; print(sys.executable)"], tmp_path)
    assert done.ok and Path(done.stdout.decode().strip()).parent == Path(sys.executable).parent
