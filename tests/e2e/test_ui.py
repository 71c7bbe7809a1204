"""A release manager's view, in a real browser: the paused deploy run and its change request.

A deploy whose evidence fails pauses for approval; headless Chromium opens the Prefect UI that
`prefect server start` serves and must show the run Paused and the CR rendered on its artifact's
own page; then the CR is approved from another process, as a person would, and the deployment
finishes.

The screenshots in `docs/` come from here: `UI_SCREENSHOTS=docs` (or another folder)
writes them; without it none are taken, which keeps the test as fast as it can be. (Not a
`CHANGEFLOW_*` name: tests/conftest.py clears those, so no test inherits a developer's stack.)
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
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
CHROMIUM = "/usr/bin/chromium"
ENV, REGION = "staging", "us-south"
CLI = [sys.executable, "-m", "cli"]


def _shot_path(name: str) -> Path | None:
    """Where screenshot `name` goes: the folder `UI_SCREENSHOTS` names; None: take none."""
    folder = os.environ.get("UI_SCREENSHOTS")
    if not folder:
        return None
    where = Path(folder) if Path(folder).is_absolute() else ROOT / folder
    where.mkdir(parents=True, exist_ok=True)
    return where / name


def _screenshot(url: str, profile: Path, name: str, size: str, ready: str) -> None:
    """Write screenshot `name` of `url`, once the page shows `ready` and its fade-in is over."""
    shot = _shot_path(name)
    if shot is None:
        return
    shot.unlink(missing_ok=True)
    _devtools(url, profile.with_name(f"cdp-{shot.stem}"), _SETTLED % json.dumps(ready), shot, size)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


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


# In the page: wait until it shows a text, then for its animations to end.
_SETTLED = """
(async () => {
  for (const end = Date.now() + 90000; Date.now() < end; ) {
    if (document.body && document.body.innerText.includes(%s)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 1500));
  return document.body.innerText;
})()
"""
# In the page: wait for the run's Resume button, click it, wait for the form to show the CR.
_OPEN_RESUME_FORM = """
(async () => {
  const until = async (test, ms) => {
    for (const end = Date.now() + ms; Date.now() < end; ) {
      const found = test();
      if (found) return found;
      await new Promise((r) => setTimeout(r, 250));
    }
    return null;
  };
  const buttons = () => [...document.querySelectorAll("button")];
  const resume = await until(() => buttons().find((b) => b.innerText.trim() === "Resume"), 90000);
  if (!resume) return "no Resume button: " + document.body.innerText;
  resume.click();
  await until(() => document.body.innerText.includes("Approvals:"), 60000);
  await new Promise((r) => setTimeout(r, 500));
  return document.body.innerText;
})()
"""


def _devtools(url: str, profile: Path, expression: str, shot: Path | None, size: str) -> str:
    """Open `url` in headless Chromium, evaluate `expression` in the page (through the DevTools
    protocol: it can click) and return its value; with `shot`, write a PNG of the page there."""
    from websockets.sync.client import connect

    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", f"--window-size={size}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (profile / "DevToolsActivePort").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        port = (profile / "DevToolsActivePort").read_text().split()[0]
        with httpx.Client() as http:
            pages = http.get(f"http://127.0.0.1:{port}/json").json()
        [page] = [p for p in pages if p["type"] == "page"]
        with connect(page["webSocketDebuggerUrl"], max_size=2**25) as ws:

            def call(method: str, **params: Any) -> dict[str, Any]:
                # the SPA replaces its document while it loads: evaluate again in the new one
                for attempt in range(10):
                    ws.send(json.dumps({"id": attempt, "method": method, "params": params}))
                    answer = json.loads(ws.recv(timeout=180))
                    while answer.get("id") != attempt:
                        answer = json.loads(ws.recv(timeout=180))
                    if "destroyed" not in answer.get("error", {}).get("message", ""):
                        break
                    time.sleep(0.5)
                assert "result" in answer, answer
                return dict(answer["result"])

            found = call(
                "Runtime.evaluate", expression=expression, awaitPromise=True,
                returnByValue=True,
            )  # fmt: skip
            if shot is not None:
                png = call("Page.captureScreenshot", format="png")["data"]
                shot.write_bytes(base64.b64decode(png))
        return str(found["result"].get("value", ""))
    finally:
        browser.kill()
        browser.wait()


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
    from prefect.client.schemas.filters import (
        ArtifactCollectionFilter,
        ArtifactCollectionFilterKey,
    )

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
        with get_client(sync_client=True) as client:
            [latest] = client.read_latest_artifacts(
                artifact_filter=ArtifactCollectionFilter(
                    key=ArtifactCollectionFilterKey(any_=[key])
                )
            )
        # the CR itself, rendered on its artifact's own page (the key's page lists versions)
        artifact_page = f"{ui}/artifacts/artifact/{latest.latest_id}"
        text = _page_text(artifact_page, profile, lambda t: "Quorum" in t and run.name in t)
        assert f"{cr.id}: deploy to {ENV} / {REGION}" in text, text[:2000]
        assert "com.ibm.unit_tests is failure" in text, text[:2000]  # why it waits
        assert "Deployment BOM" in text and "Backout plan" in text, text[:2000]
        assert "nobody yet" in text and "1 more needed" in text, text[:2000]  # the quorum
        assert run.name in text, text[:2000]  # the artifact belongs to the paused run
        listing = _page_text(f"{ui}/artifacts", profile, lambda t: key in t)
        assert key in listing and cr.id in listing, listing[:2000]

        _screenshot(run_page, profile, "ui-paused-run.png", "1400,1000", "Resume")
        # the Resume form: the CR, the quorum and the exact text to sign, and a signature field
        shot = _shot_path("ui-resume-form.png")
        form = _devtools(run_page, tmp_path / "cdp", _OPEN_RESUME_FORM, shot, "1400,1300")
        assert f"{cr.id}: deploy to {ENV} / {REGION}" in form, form[:3000]
        assert "1 more needed" in form and "Unsigned approvals are accepted" in form, form[:3000]
        assert "Signature" in form and "By" in form, form[:3000]
        _screenshot(artifact_page, profile, "ui-change-request-artifact.png", "1400,1400", "Quorum")

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

    _screenshot(form, profile, "ui-run-form.png", "1400,900", "Region")
