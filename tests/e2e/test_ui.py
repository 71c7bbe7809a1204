"""A release manager's view, in a real browser: the paused deploy run and its change request.

A deploy whose evidence fails pauses for approval; headless Chromium opens the Prefect UI that
`prefect server start` serves and must show the run Paused and the CR artifact; then the CR is
approved from another process, as a person would, and the deployment finishes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stack_support import register_deployment

from blocks import stores as config
from blocks.source import commit_all
from changeflow.change import awaiting_approval
from changeflow.models import ChangeState, CloseCategory, Priority
from changeflow.requests import BuildRequest, PromotionRequest, RecordStores
from cli.demo import environments_toml, sample_app_dir
from cli.local_stack import init_bare_repo

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"
ENV, REGION = "staging", "us-south"
CLI = [sys.executable, "-m", "cli"]


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert Path(CHROMIUM).exists(), (
        "headless Chromium is needed: apt-get update && apt-get install -y chromium"
    )
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--virtual-time-budget=15000", *extra, url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _page_text(url: str, profile: Path, want: Callable[[str], bool], within_s: float = 150) -> str:
    """The text the SPA renders at `url`; read again until `want` holds or `within_s` is spent.

    A busy machine can dump the page before the UI's later requests have rendered (the run that
    owns an artifact comes after the artifact), so the bound is time, not a count of reads.
    """
    deadline = time.monotonic() + within_s
    while True:
        done = _chromium(url, profile, "--dump-dom")
        assert done.returncode == 0, done.stderr[-2000:]
        dom = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", done.stdout, flags=re.S)
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
        if want(text) or time.monotonic() > deadline:
            return text
        time.sleep(1)


def _wait_for(find: Callable[[], Any], process: subprocess.Popen[bytes], what: str) -> Any:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(
                f"the deploy ended before {what}: {out.decode()[-1000:]}{err.decode()[-3000:]}"
            )
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def _failing_release(tmp_path: Path) -> tuple[str, str]:
    """The sample application with a failing unit test, pushed to a bare remote."""
    app = tmp_path / "sample-app"
    shutil.copytree(
        sample_app_dir(), app, ignore=shutil.ignore_patterns("dist", "reports", "__pycache__")
    )
    (app / "tests" / "test_farewell.py").write_text(
        "from sample_app import greet\n\n\ndef test_says_goodbye():\n"
        '    assert greet("Ada") == "Goodbye, Ada!"\n'
    )
    repo_url = init_bare_repo(tmp_path / "remotes" / "sample-app.git")
    return repo_url, commit_all(app, "sample-app: a failing farewell test", repo_url)


def test_release_manager_sees_the_paused_run_and_its_change_request(
    stack_env: dict[str, str],
    prefect_api: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect import get_client

    from flows.ci_flow import ci
    from flows.promote_flow import promote

    repo_url, sha = _failing_release(tmp_path)
    env_file = tmp_path / "environments.toml"
    env_file.write_text(environments_toml(tmp_path / "sample-app", tmp_path / "deployed"))
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(env_file))

    result = ci(BuildRequest(repo_url=repo_url, commit_sha=sha), RecordStores.from_env())
    assert "unit-tests" in result.failed_checks
    request = PromotionRequest(
        source="master", target=ENV, priority=Priority.moderate,
        assigned_to="release-manager@example.com", description="sample-app to staging",
        backout_plan="redeploy the previous inventory commit",
    )  # fmt: skip
    promote(request, RecordStores.from_env())

    deploying = subprocess.Popen(
        [*CLI, "deploy", "--environment", ENV, "--region", REGION],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        changes = config.change_management(None)
        cr = _wait_for(
            lambda: awaiting_approval(changes.list(), ENV, REGION),
            deploying,
            "its change request waited for approval",
        )
        with get_client(sync_client=True) as client:

            def paused() -> Any:
                run = client.read_flow_run(cr.flow_run_id)
                return run if run.state and run.state.is_paused() else None

            run = _wait_for(paused, deploying, "the deploy run paused")

        ui = prefect_api.removesuffix("/api")
        profile = tmp_path / "chromium-profile"
        run_page = f"{ui}/runs/flow-run/{cr.flow_run_id}"
        text = _page_text(run_page, profile, lambda t: "Paused" in t and run.name in t)
        assert run.name in text, text[:2000]
        assert "Paused" in text, text[:2000]
        assert "Resume" in text, text[:2000]
        assert "deploy" in text  # the flow's name, linked from the run

        key = f"change-request-{ENV}-{REGION}"
        artifact_page = f"{ui}/artifacts/key/{key}"
        text = _page_text(artifact_page, profile, lambda t: cr.id in t and run.name in t)
        assert key in text, text[:2000]
        assert f"{cr.id} (authorize)" in text, text[:2000]
        assert run.name in text, text[:2000]  # the artifact belongs to the paused run
        listing = _page_text(f"{ui}/artifacts", profile, lambda t: key in t)
        assert key in listing and cr.id in listing, listing[:2000]

        DOCS.mkdir(exist_ok=True)
        shot = DOCS / "ui-paused-run.png"
        shot.unlink(missing_ok=True)
        done = _chromium(run_page, profile, f"--screenshot={shot}", "--window-size=1400,1000")
        assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        card = DOCS / "ui-change-request-artifact.png"
        card.unlink(missing_ok=True)
        done = _chromium(artifact_page, profile, f"--screenshot={card}", "--window-size=1400,1000")
        assert done.returncode == 0 and card.exists(), done.stderr[-2000:]

        approved = subprocess.run(
            [*CLI, "cr", "approve", cr.id, "--by", "ui-test", "--comment", "seen in the UI"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        assert "resumed deploy run" in approved.stdout
        out, err = deploying.communicate(timeout=600)
    finally:
        if deploying.poll() is None:
            deploying.kill()
            deploying.wait()
    assert deploying.returncode == 0, err.decode()[-3000:]
    assert cr.id in out.decode()

    closed = config.change_management(None).get(cr.id)
    assert closed.state is ChangeState.closed
    assert closed.close_category is CloseCategory.successful_issues
    assert [a.by for a in closed.approvals] == ["ui-test"]
    with get_client(sync_client=True) as client:
        final = client.read_flow_run(cr.flow_run_id)
    assert final.state is not None and final.state.is_completed()
    assert config.inventory(None).resolve(f"{REGION}_{ENV}_latest") == closed.inventory_commit


def test_the_run_form_offers_only_the_projects_environments_and_regions(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release manager's "Custom run" form: the deployment request with its choices."""
    deployment_id = register_deployment("staging-us-south", tmp_path, monkeypatch)

    form = f"{prefect_api.removesuffix('/api')}/deployments/deployment/{deployment_id}/run"
    profile = tmp_path / "chromium-profile"
    text = _page_text(form, profile, lambda t: "Region" in t)
    assert "what to deploy where, and how" in text, text[:3000]
    # the choices of environments.toml, as selects: nothing else can be typed in
    assert re.search(r"Environment The environment \(an inventory branch\)\. prod staging ", text)
    assert re.search(r"Region The region to deploy to\. eu-de us-south ", text), text[:3000]

    shot = DOCS / "ui-run-form.png"
    shot.unlink(missing_ok=True)
    done = _chromium(form, profile, f"--screenshot={shot}", "--window-size=1400,900")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
