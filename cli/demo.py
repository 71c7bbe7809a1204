"""`changeflow demo`: the whole lifecycle on the sample application, on a local stack of its own.

Prefect is imported only after the stack's variables are set, so every flow reaches the demo's own
Prefect server (or the one `PREFECT_API_URL` names) and the console shows only the story.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from changeflow.change import awaiting_approval
from changeflow.errors import NotReady
from changeflow.models import ChangeRequest
from changeflow.requests import (
    AuditRequest,
    BuildRequest,
    DeploymentRequest,
    PromotionRequest,
    RecordStores,
    project_environments,
)
from cli.in_process import one_api_client  # Prefect is imported only when it is entered

__all__ = ["DemoLifecycle", "approver_keys", "flush_to_prefect", "run_demo", "sample_app_dir"]

Say = Callable[[str], None]


def sample_app_dir() -> Path:
    """The sample application that ships with changeflow."""
    return Path(__file__).resolve().parent.parent / "examples" / "sample-app"


def _quiet_prefect_console() -> None:
    # the run logs still reach the Prefect API and its UI; the console tells the demo's story
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def environments_toml(app: Path, deployed: Path, approvers: dict[str, str] | None = None) -> str:
    """The demo's environments file: staging in one region, prod in two.

    With `approvers` (identity -> SSH public key), each environment takes two of their signed
    approvals.
    """
    python = sys.executable

    def quoted(args: list[str]) -> str:
        return "[" + ", ".join(f'"{a}"' for a in args) + "]"

    deploy = quoted(
        [
            python,
            str(app / "deploy" / "install.py"),
            "--target",
            f"{deployed}/{{environment}}/{{region}}",
        ]
    )
    acceptance = quoted(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", ".",
         "--junitxml=acceptance.xml", str(app / "acceptance")]
    )  # fmt: skip
    out = []
    for env, regions in (("staging", ["us-south"]), ("prod", ["us-south", "eu-de"])):
        out += [
            f"[environments.{env}]",
            f"regions = {quoted(regions)}",
            f"deploy = {deploy}",
            "approval_timeout_s = 900",
            *(_approvers_toml(approvers) if approvers else []),
            f"[environments.{env}.acceptance]",
            f"command = {acceptance}",
            'report = "acceptance.xml"',
            'tool = "pytest"',
            "",
        ]
    return "\n".join(out)


def _approvers_toml(approvers: dict[str, str]) -> list[str]:
    listed = ", ".join(f'{{ identity = "{w}", public_key = "{k}" }}' for w, k in approvers.items())
    return ["approvals_required = 2", f"approvers = [{listed}]"]


def approver_keys(directory: Path) -> dict[str, Path]:
    """Two release managers' SSH ed25519 keys (`ssh-keygen`), identity -> private key file."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = {who: directory / who.split("@")[0] for who in ("alice@example.com", "bob@example.com")}
    for who, key in keys.items():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(key)],
                       check=True, capture_output=True)  # fmt: skip
    return keys


class DemoLifecycle:
    """The demo's story, step by step, against whatever stack the environment points at."""

    def __init__(self, workspace: Path, say: Say) -> None:
        self.workspace = workspace
        self.say = say
        self.app = workspace / "sample-app"
        self.app_remote = workspace / "remotes" / "sample-app.git"
        self.env_file = workspace / "environments.toml"

    def run(self) -> list[ChangeRequest]:
        """Run three releases through ci, promote and deploy; return every CR filed."""
        from cli.local_stack import init_bare_repo

        ignore = shutil.ignore_patterns("dist", "reports", "__pycache__")
        shutil.copytree(sample_app_dir(), self.app, ignore=ignore)
        self.repo_url = init_bare_repo(self.app_remote)
        # a CR that is not ready takes two release managers' signed approvals (issue 13)
        self.keys = approver_keys(self.workspace / "approvers")
        public = {who: k.with_suffix(".pub").read_text().strip() for who, k in self.keys.items()}
        self.env_file.write_text(environments_toml(self.app, self.workspace / "deployed", public))
        os.environ["CHANGEFLOW_ENVIRONMENTS"] = str(self.env_file)

        with one_api_client():  # every flow call of the three releases, one client
            self.say("release 0.1.0: build, check, promote and deploy everywhere")
            self.release("0.1.0", "Hello, {name}!", "first release of the greeting service")
            self.say("release 0.2.0: a code change, so prod's delta is only what changed")
            self.release("0.2.0", "Hello there, {name}!", "friendlier greeting")
            self.say(
                "release 0.3.0: failing unit and acceptance tests: the CR is not auto-approved, "
                "and the promotion gate keeps it out of prod"
            )
            self.failing_release("0.3.0")
            self.say("")
            self.trace_prod("sample-app/wheel")
        from blocks import stores

        crs: list[ChangeRequest] = stores.change_management(None).list()
        return crs

    def _commit(self, version: str, greeting: str, message: str) -> str:
        from blocks.source import commit_all

        init = self.app / "src" / "sample_app" / "__init__.py"
        text = init.read_text()
        lines = [
            f'__version__ = "{version}"' if line.startswith("__version__") else line
            for line in text.splitlines()
        ]
        text = "\n".join(lines) + "\n"
        start = text.index('    return f"')
        end = text.index("\n", start)
        text = text[:start] + f'    return f"{greeting}"' + text[end:]
        init.write_text(text)
        project = self.app / "pyproject.toml"
        project.write_text(
            re.sub(
                r'^version = ".*"$',
                f'version = "{version}"',
                project.read_text(),
                count=1,
                flags=re.M,
            )
        )
        return commit_all(self.app, message, self.repo_url)

    def ci(self, sha: str) -> None:
        from flows.ci_flow import ci

        result = ci(BuildRequest(repo_url=self.repo_url, commit_sha=sha), RecordStores.from_env())
        failing = f"; failing: {', '.join(result.failed_checks)}" if result.failed_checks else ""
        self.say(
            f"  ci {sha[:12]}: {len(result.evidence)} checks recorded as evidence, "
            f"{len(result.recorded)} of {len(result.entries)} entries new on master{failing}"
        )

    def promote(self, source: str, target: str, version: str, why: str) -> None:
        from changeflow.models import Priority
        from flows.promote_flow import promote

        request = PromotionRequest(
            source=source,
            target=target,
            priority=Priority.moderate,
            assigned_to="release-manager@example.com",
            description=f"sample-app {version} to {target}: {why}",
            purpose=why,
            impact="greeting service restarts in each region",
            backout_plan="redeploy the previous inventory commit (the region's _latest tag)",
        )
        try:
            promotion = promote(request, RecordStores.from_env())
        except NotReady as exc:  # the command line exits 1 with the same lines
            lines = str(exc).splitlines()
            rest = ["    " + line for line in lines[1:]]
            self.say("\n".join([f"  promote {source} -> {target}: {lines[0]}", *rest]))
            return
        self.say(f"  promote {source} -> {target}: {', '.join(promotion.entries)}")

    def deploy(self, environment: str, region: str) -> None:
        from flows.deploy_flow import deploy

        request = DeploymentRequest(environment=environment, region=region)
        outcome = deploy(request, RecordStores.from_env())
        self.say(
            f"  deploy {environment}/{region}: {outcome.change_request} "
            f"{'auto-approved' if outcome.deployment_ready else 'NOT ready'}, "
            f"{outcome.state} {outcome.close_category or ''}".rstrip()
        )

    def release(self, version: str, greeting: str, why: str) -> None:
        sha = self._commit(version, greeting, f"sample-app {version}: {why}")
        self.ci(sha)
        self.promote("master", "staging", version, why)
        self.deploy("staging", "us-south")
        self.promote("staging", "prod", version, why)
        for region in ("us-south", "eu-de"):
            self.deploy("prod", region)

    def failing_release(self, version: str) -> None:
        failing = self.app / "tests" / "test_farewell.py"
        failing.write_text(
            "from sample_app import greet\n\n\ndef test_says_goodbye():\n"
            '    assert greet("Ada") == "Goodbye, Ada!"\n'
        )
        # no "!" either: the acceptance tests fail in staging too
        sha = self._commit(version, "Hi, {name}.", f"sample-app {version}: shorter greeting")
        self.ci(sha)
        self.promote("master", "staging", version, "shorter greeting")
        self.approve_through_cli("staging", "us-south", self.keys)
        # the promotion gate: only what was deployed and tested in staging moves on (exit 1)
        self.promote("staging", "prod", version, "shorter greeting")

    def trace_prod(self, entry: str) -> None:
        """Print `changeflow trace` of the artifact `entry` names in prod/us-south."""
        from datetime import date

        from blocks import stores
        from changeflow.trace import render_trace
        from tasks.history import read_trace

        opened = stores.open_stores(RecordStores.from_env())
        uri = opened.inventory.entries("us-south_prod_latest")[entry].provenance
        self.say(f"changeflow trace {uri}")
        # as the command reads it: the builds on master and on the environments' branches
        environments = sorted(project_environments().environments)
        trace = read_trace(opened, uri, branches=environments, today=date.today())
        self.say("\n".join("  " + line for line in render_trace(trace).splitlines()))

    def approve_through_cli(
        self, environment: str, region: str, keys: dict[str, Path] | None = None
    ) -> None:
        """Deploy in a process of its own and approve its CR the way a person would: with
        `keys`, each of those release managers signs an approval with their own key."""
        from blocks import stores

        cli = [sys.executable, "-m", "cli"]
        deploying = subprocess.Popen(
            [*cli, "deploy", "--environment", environment, "--region", region],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        changes = stores.change_management(None)
        waiting = _wait_for(
            lambda: awaiting_approval(changes.list(environment, True), environment, region),
            deploying,
        )
        self.say(
            f"  deploy {environment}/{region}: {waiting.id} NOT ready "
            f"({waiting.readiness_reasons[0]}); the run pauses for approval"
        )
        comment = "known failing farewell test; greeting change verified by hand"
        people: dict[str, Path | None] = {**keys} if keys else {"demo release manager": None}
        for who, key in people.items():
            signed = ["--key", str(key)] if key else []
            approved = subprocess.run(
                [*cli, "cr", "approve", waiting.id, "--by", who, *signed, "--comment", comment],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if approved.returncode != 0:
                raise RuntimeError(f"changeflow cr approve failed: {approved.stderr.strip()}")
            how = f" --by {who} --key {key.name}" if key else ""
            self.say(f"  changeflow cr approve {waiting.id}{how}: {approved.stdout.strip()}")
        out, err = deploying.communicate(timeout=600)
        if deploying.returncode != 0:
            raise RuntimeError(f"the paused deployment failed: {err.decode()[-2000:]}")
        self.say(f"  deploy {out.decode().strip()}")


# how often the demo looks for the CR that waits for approval
_POLL_S = 0.5


def _wait_for(
    find: Callable[[], Any], process: subprocess.Popen[bytes], timeout: float = 300
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"the deployment ended before asking for approval: {err[-2000:]}")
        time.sleep(_POLL_S)
    process.kill()
    raise RuntimeError("no change request came to wait for approval")


def cr_table(crs: list[ChangeRequest], where: str) -> str:
    """The closing table: one line per change request."""
    from changeflow.render import markdown_table

    rows = [
        [
            cr.id,
            cr.environment,
            cr.region,
            f"{cr.state.value} ({cr.close_category.value})"
            if cr.close_category
            else cr.state.value,
            "ready" if cr.deployment_ready else "not ready",
            str(cr.evidence_count),
            f"{where}:changes/{cr.id}.json",
        ]
        for cr in crs
    ]
    return markdown_table(
        ["CR", "environment", "region", "state", "readiness", "evidence", "where"], rows
    )


def flush_to_prefect() -> None:
    """Send the last run logs and events while the demo's Prefect server still listens."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    EventsWorker.drain_all(timeout=5)


def run_demo(keep: bool = False, say: Say = print) -> list[ChangeRequest]:
    """Start a local stack in a temporary workspace, run the lifecycle, print every CR."""
    _quiet_prefect_console()
    workspace = Path(tempfile.mkdtemp(prefix="changeflow-demo-"))
    say(f"changeflow demo in {workspace}")
    from cli.local_stack import LocalStack

    stack = LocalStack(workspace / "stack")
    try:
        stack.start(prefect_api_url=os.environ.get("PREFECT_API_URL"))
        os.environ.update(stack.env)
        from cli.keys import ensure_keys

        # CI and deploy sign with keys of their own, judged under the demo's trust file
        os.environ.update(ensure_keys(workspace / "keys"))
        say(f"  SeaweedFS S3 at {stack.env['CHANGEFLOW_S3_ENDPOINT']}, Prefect API at "
            f"{stack.env['PREFECT_API_URL']}")  # fmt: skip
        from blocks import stores
        from blocks.evidence_locker import EvidenceLocker

        # Bucket administration is the locker block's own, not part of the evidence store port.
        EvidenceLocker.from_env().create_bucket()
        crs = DemoLifecycle(workspace, say).run()
        say("")
        say(cr_table(crs, stack.env["CHANGEFLOW_CHANGE_REPO_URL"]))
        from flows.audit_flow import verify

        report = verify(AuditRequest(environment="prod"), RecordStores.from_env())
        say(
            f"\nchangeflow verify --environment prod: re-hashed {report.checked} records behind "
            f"{', '.join(report.targets)} ({', '.join(report.change_requests)}): "
            + ("every hash matches" if report.ok else f"{len(report.broken)} problems")
        )
        from cli import audit

        package = workspace / "audit"  # the latest prod CR, exported and checked offline
        manifest = audit.export(package, report.change_requests[0])
        say(f"\nchangeflow audit export: {audit.exported_line(manifest, package)}")
        say(f"changeflow audit verify: {audit.check(package)[1]}")
        storage = stores.evidence_locker(None).check_storage()
        retention = f", {storage.retention_mode} retention for {storage.retention_days} days"
        say(
            f"\nevidence bucket {storage.bucket}: object lock "
            + (f"on{retention}" if storage.locked else "off")
        )
        return crs
    finally:
        flush_to_prefect()
        stack.stop()
        if keep:
            say(f"workspace kept in {workspace}")
        else:
            shutil.rmtree(workspace, ignore_errors=True)
