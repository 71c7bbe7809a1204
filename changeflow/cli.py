"""The `changeflow` command line: record evidence, inspect the inventory, run the flows.

Exit codes: 0 success; 1 the work ran and the answer is no (not ready, does not verify, a service
could not be reached); 2 bad input, with one line on stderr. Prefect, boto3 and git are imported
only by the commands that need them, so `--help` and input checks stay fast.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError

try:  # typer 0.2x vendors click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]
from changeflow.errors import BadInput, IntegrityError, NotReady, StorageUnavailable
from changeflow.models import (
    Approval,
    Asset,
    ChangeRequest,
    CloseCategory,
    CustomerImpact,
    DeploymentImpact,
    EvidenceResult,
    InventoryEntry,
    Priority,
)
from changeflow.settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="Evidence-based change management for deployments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
evidence_app = typer.Typer(help="Record and read evidence.", no_args_is_help=True)
inventory_app = typer.Typer(help="Read and write the inventory.", no_args_is_help=True)
cr_app = typer.Typer(help="Change requests.", no_args_is_help=True)
dev_app = typer.Typer(help="A local stack: SeaweedFS, Prefect, git remotes.", no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")
app.add_typer(inventory_app, name="inventory")
app.add_typer(cr_app, name="cr")
app.add_typer(dev_app, name="dev")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _emit(value: Any, as_json: bool, human: str) -> None:
    if as_json:
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_none=True)
        typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
    else:
        typer.echo(human)


def _settings() -> Settings:
    return Settings.from_env()


# -- evidence ---------------------------------------------------------------------------------


def _attachment_arg(value: str) -> tuple[Path, str | None]:
    path, _, label = value.partition("::label=")
    return Path(path), label or None


@evidence_app.command("add")
def evidence_add(
    type_: Annotated[str, typer.Option("--type", help="Evidence type, e.g. com.ibm.unit_tests.")],
    tool: Annotated[str, typer.Option(help="The tool that produced it.")],
    asset: Annotated[list[str], typer.Option(help="Asset uri (repeatable).")],
    result: Annotated[EvidenceResult | None, typer.Option(help="success|failure|pending.")] = None,
    report: Annotated[
        str | None,
        typer.Option(help="FORMAT:PATH of a junit|sarif|cyclonedx|detect-secrets report."),
    ] = None,
    attachment: Annotated[
        list[str] | None, typer.Option(help="PATH[::label=L] (repeatable).")
    ] = None,
    scope: Annotated[str | None, typer.Option(help="The CI run it belongs to.")] = None,
    issue: Annotated[list[str] | None, typer.Option(help="Issue URL (repeatable).")] = None,
    date: Annotated[
        datetime | None, typer.Option(help="When it was observed (default now).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one piece of evidence about one or more assets."""
    from changeflow.evidence import make_evidence
    from changeflow.reports import ReportFormat, parse_report

    if (result is None) == (report is None):
        raise BadInput("give either --result or --report (the report decides the result)")
    files = [_attachment_arg(a) for a in attachment or []]
    report_data: tuple[ReportFormat, Path] | None = None
    if report is not None:
        fmt, sep, report_path = report.partition(":")
        if not sep or fmt not in {f.value for f in ReportFormat}:
            raise BadInput(
                f"--report wants FORMAT:PATH with FORMAT one of {', '.join(ReportFormat)}"
            )
        report_data = (ReportFormat(fmt), Path(report_path))
        files.append((Path(report_path), Path(report_path).name))
    for path, _ in files:
        if not path.is_file():
            raise BadInput(f"attachment not found: {path}")
    assets = [Asset.for_uri(uri) for uri in asset]
    findings, summary = [], None
    if report_data is not None:
        outcome = parse_report(report_data[0], report_data[1].read_bytes())
        result, findings, summary = outcome.result, outcome.findings, outcome.summary
    assert result is not None
    scope = scope or f"cli-{datetime.now():%Y%m%dT%H%M%S}"
    draft = make_evidence(
        evidence_type_id=type_, result=result, tool=tool, scope=scope, assets=assets,
        findings=findings, issues=issue or [], summary=summary, date=date,
    )  # fmt: skip
    from blocks.evidence_locker import EvidenceLocker

    locker = EvidenceLocker.from_settings(_settings())
    stored = [locker.store_attachment(path, label) for path, label in files]
    evidence = locker.put_evidence(
        make_evidence(
            evidence_type_id=type_, result=result, tool=tool, scope=scope, assets=assets,
            attachments=stored, findings=findings, issues=issue or [], summary=summary,
            date=draft.date,
        ),
        assets,
    )  # fmt: skip
    _emit(evidence, as_json, f"{evidence.id} {evidence.evidence_type_id} {evidence.result.value}")


@evidence_app.command("get")
def evidence_get(evidence_id: str, as_json: JsonOpt = False) -> None:
    """Read one evidence record (re-hashed on read)."""
    from blocks.evidence_locker import EvidenceLocker

    if len(evidence_id) != 64 or any(c not in "0123456789abcdef" for c in evidence_id):
        raise BadInput(f"an evidence id is 64 lowercase hex characters: {evidence_id!r}")
    record = EvidenceLocker.from_settings(_settings()).get_evidence(evidence_id)
    human = (
        f"{record.id}\n  type: {record.evidence_type_id}\n  result: {record.result.value}\n"
        f"  tool: {record.details.tool}\n  date: {record.date.isoformat()}\n"
        f"  scope: {record.origin.scope}\n  attachments: {len(record.attachments)}\n"
        f"  findings: {len(record.findings)}"
    )
    _emit(record, as_json, human)


@evidence_app.command("summary")
def evidence_summary(
    asset: Annotated[list[str] | None, typer.Option(help="Asset uri (repeatable).")] = None,
    environment: Annotated[str | None, typer.Option(help="Summarize an environment.")] = None,
    region: Annotated[str | None, typer.Option(help="With --environment.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The latest evidence per asset and type, for assets or what an environment holds."""
    from blocks import config
    from changeflow.models import asset_id
    from changeflow.render import markdown_table
    from changeflow.summary import summarize

    if bool(asset) == bool(environment):
        raise BadInput("give either --asset or --environment")
    if environment:
        inventory = config.inventory(None)
        ref = f"{region}_{environment}_latest" if region else environment
        if inventory.resolve(ref) is None:
            raise BadInput(
                f"unknown environment {environment!r}"
                + (f" or region {region!r}" if region else "")
            )
        uris = [e.provenance for e in inventory.entries(ref).values()]
    else:
        uris = list(asset or [])
    assets = {asset_id(u): u for u in uris}
    locker = config.evidence_locker(None)
    found = locker.evidence_for_assets(assets)
    records = {e.id: e for rs in found.values() for e in rs}.values()
    summary = summarize(
        scope="cli", environment=environment or "", region=region or "", assets=assets,
        records=records,
    )  # fmt: skip
    rows = [
        [i.asset_uri, i.evidence_type_id, i.result.value, i.tool, i.evidence_id[:12]]
        for i in summary.evidence
    ]
    _emit(summary, as_json, markdown_table(["asset", "type", "result", "tool", "evidence"], rows))


# -- inventory --------------------------------------------------------------------------------


@inventory_app.command("add")
def inventory_add(
    name: Annotated[str, typer.Option()],
    artifact: Annotated[str, typer.Option()],
    version: Annotated[str, typer.Option()],
    sha256: Annotated[str, typer.Option()],
    type_: Annotated[str, typer.Option("--type")],
    repository_url: Annotated[str, typer.Option()],
    commit_sha: Annotated[str, typer.Option()],
    build_number: Annotated[str, typer.Option()],
    pipeline_run_id: Annotated[str, typer.Option()],
    provenance: Annotated[str, typer.Option()],
    signature: Annotated[str | None, typer.Option()] = None,
    environment: Annotated[str, typer.Option(help="The branch to write.")] = "master",
    as_json: JsonOpt = False,
) -> None:
    """Record one artifact as an inventory entry."""
    entry = InventoryEntry(
        name=name, artifact=artifact, version=version, sha256=sha256, type=type_,
        repository_url=repository_url, commit_sha=commit_sha, build_number=build_number,
        pipeline_run_id=pipeline_run_id, provenance=provenance, signature=signature,
    )  # fmt: skip
    from blocks import config

    commit = config.inventory(None).add_entries([entry], branch=environment)
    _emit({"entry": entry.model_dump(mode="json", exclude_none=True), "commit": commit}, as_json,
          f"{entry.name} recorded on {environment} at {commit}")  # fmt: skip


def _ref(inventory: Any, environment: str | None, label: str | None) -> str:
    if bool(environment) == bool(label):
        raise BadInput("give either --environment or --label")
    ref = environment or label
    assert ref is not None
    if inventory.resolve(ref) is None:
        kind = "environment" if environment else "label"
        raise BadInput(f"unknown {kind} {ref!r}: the inventory has no such branch or tag")
    return ref


@inventory_app.command("get")
def inventory_get(
    name: str,
    environment: Annotated[str | None, typer.Option()] = None,
    label: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read one entry at an environment or a label."""
    from blocks import config

    inventory = config.inventory(None)
    ref = _ref(inventory, environment, label)
    entry = inventory.get(name, ref)
    if entry is None:
        raise BadInput(f"no entry {name!r} at {ref}")
    human = "\n".join(
        f"{k}: {v}" for k, v in entry.model_dump(mode="json", exclude_none=True).items()
    )
    _emit(entry, as_json, human)


@inventory_app.command("delta")
def inventory_delta(
    from_label: Annotated[str, typer.Option()],
    to_environment: Annotated[str, typer.Option()],
    as_json: JsonOpt = False,
) -> None:
    """What changed between a label (e.g. us-south_prod_latest) and an environment."""
    from blocks import config

    inventory = config.inventory(None)
    _ref(inventory, to_environment, None)
    start = inventory.resolve(from_label)
    if start is None:
        raise BadInput(f"unknown label {from_label!r}: the inventory has no such tag")
    delta = inventory.delta(start, to_environment)
    lines = [f"changed {n}" for n in delta.changed] + [f"added {n}" for n in delta.added]
    lines += [f"deleted {n}" for n in delta.deleted]
    data = {"changed": delta.changed, "added": delta.added, "deleted": delta.deleted}
    _emit(data, as_json, "\n".join(lines) or "no changes")


# -- lifecycle --------------------------------------------------------------------------------


@app.command("promote")
def promote_cmd(
    source: Annotated[str | None, typer.Option()] = None,
    target: Annotated[str | None, typer.Option()] = None,
    priority: Annotated[Priority | None, typer.Option()] = None,
    assigned_to: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    backout_plan: Annotated[str | None, typer.Option()] = None,
    purpose: Annotated[str, typer.Option()] = "",
    impact: Annotated[str, typer.Option()] = "",
    customer_impact: Annotated[CustomerImpact, typer.Option()] = CustomerImpact.no_impact,
    deployment_impact: Annotated[DeploymentImpact, typer.Option()] = DeploymentImpact.small,
    include: Annotated[list[str] | None, typer.Option(help="Glob of entries to promote.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob of entries to leave.")] = None,
    emergency: Annotated[bool, typer.Option("--emergency")] = False,
    review: Annotated[bool, typer.Option("--review", help="Leave it open for approval.")] = False,
    merge: Annotated[str | None, typer.Option(help="Merge a promotion left open.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote artifacts from one environment to another (or merge one left for review)."""
    if merge:
        from flows.promote_flow import merge_promotion

        commit = merge_promotion(merge, inventory_block=None)
        _emit({"promotion": merge, "commit": commit}, as_json, f"merged {merge} at {commit}")
        return
    missing = [
        f"--{n.replace('_', '-')}"
        for n, v in [("source", source), ("target", target), ("priority", priority),
                     ("assigned_to", assigned_to), ("description", description),
                     ("backout_plan", backout_plan)]
        if not v
    ]  # fmt: skip
    if missing:
        raise BadInput(f"promote needs {', '.join(missing)} (or --merge ID)")
    assert source and target and priority and assigned_to and description and backout_plan
    if source == target:
        raise BadInput("--source and --target must differ")
    from flows.promote_flow import promote

    promotion = promote(
        source=source, target=target, priority=priority, assigned_to=assigned_to,
        description=description, backout_plan=backout_plan, purpose=purpose, impact=impact,
        customer_impact=customer_impact, deployment_impact=deployment_impact,
        include=include or [], exclude=exclude or [], emergency=emergency, review=review,
        inventory_block=None,
    )  # fmt: skip
    state = "open for review" if review else "merged"
    _emit(promotion, as_json, f"promotion {promotion.id}: {len(promotion.entries)} entries "
          f"{source} -> {target} ({state})")  # fmt: skip


@app.command("ci")
def ci_cmd(
    repo: Annotated[str, typer.Option(help="Git URL of the application.")],
    commit: Annotated[str, typer.Option(help="The commit to build (40 hex).")],
    as_json: JsonOpt = False,
) -> None:
    """Build a commit, record its evidence and its inventory entries."""
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        raise BadInput(f"--commit wants a full 40-hex commit sha: {commit!r}")
    from flows.ci_flow import ci

    result = ci(repo, commit, inventory_block=None, locker_block=None)
    failed = f"; failing checks: {', '.join(result.failed_checks)}" if result.failed_checks else ""
    _emit(result, as_json, f"ci {result.scope}: {len(result.recorded)} entries recorded, "
          f"{len(result.evidence)} evidence{failed}")  # fmt: skip


@app.command("deploy")
def deploy_cmd(
    environment: Annotated[str, typer.Option()],
    region: Annotated[str, typer.Option()],
    command: Annotated[
        str | None, typer.Option(help="Deploy command (split like a shell, run without one).")
    ] = None,
    environments: Annotated[
        Path | None, typer.Option(help="environments.toml (default CHANGEFLOW_ENVIRONMENTS).")
    ] = None,
    force: Annotated[bool, typer.Option("--force")] = False,
    emergency: Annotated[bool, typer.Option("--emergency")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy what changed to one environment and region under its own change request."""
    from flows.deploy_flow import deploy, environment_spec

    argv = shlex.split(command) if command else None
    env_file = str(environments) if environments else _settings().environments_file
    environment_spec(environment, region, env_file, argv)  # bad input before any run starts
    outcome = deploy(
        environment=environment, region=region, command=argv, force=force, emergency=emergency,
        environments_file=env_file, inventory_block=None, locker_block=None, changes_block=None,
    )  # fmt: skip
    human = f"{outcome.change_request or '-'} {environment}/{region}: {outcome.message}"
    if outcome.change_request:
        human += f" ({outcome.state}" + (
            f", {outcome.close_category})" if outcome.close_category else ")"
        )
    _emit(outcome, as_json, human)
    if outcome.close_category in ("unsuccessful", "cancelled") or outcome.state == "cancelled":
        raise typer.Exit(1)


@app.command("verify")
def verify_cmd(
    environment: Annotated[str | None, typer.Option()] = None,
    region: Annotated[str | None, typer.Option()] = None,
    change_request: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash every record behind a deployment; exit 1 when anything does not verify."""
    if bool(environment) == bool(change_request):
        raise BadInput("give either --environment (and optionally --region) or --change-request")
    from flows.audit_flow import verify

    report = verify(
        environment=environment, region=region, change_request=change_request,
        inventory_block=None, locker_block=None, changes_block=None,
    )  # fmt: skip
    what = ", ".join(report.targets)
    if report.ok:
        human = (f"verified {report.checked} records behind {what} "
                 f"({', '.join(report.change_requests)}): every hash matches")  # fmt: skip
    else:
        human = "\n".join([f"does not verify: {b}" for b in report.broken]
                          + [f"{len(report.broken)} problems behind {what}"])  # fmt: skip
    _emit(report.model_dump() | {"ok": report.ok}, as_json, human)
    if not report.ok:
        raise typer.Exit(1)


# -- change requests --------------------------------------------------------------------------


def _cr_line(cr: ChangeRequest) -> str:
    category = cr.close_category.value if cr.close_category else "-"
    ready = "ready" if cr.deployment_ready else "not-ready"
    return (
        f"{cr.id}  {cr.environment:<10} {cr.region:<10} {cr.state.value:<10} {category:<18} {ready}"
    )


@cr_app.command("list")
def cr_list(
    environment: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False
) -> None:
    """Every change request (optionally of one environment)."""
    from blocks import config

    crs = [c for c in config.change_management(None).list() if environment in (None, c.environment)]
    _emit([c.model_dump(mode="json", exclude_none=True) for c in crs], as_json,
          "\n".join(_cr_line(c) for c in crs) or "no change requests")  # fmt: skip


@cr_app.command("get")
def cr_get(cr_id: str, as_json: JsonOpt = False) -> None:
    """One change request, rendered for people (or as its JSON record)."""
    from blocks import config
    from changeflow.render import render_change_request

    cr = config.change_management(None).get(cr_id)
    _emit(cr, as_json, render_change_request(cr))


def _decide(cr_id: str, by: str, comment: str, approved: bool, as_json: bool) -> None:
    from blocks import config
    from changeflow.change import record_decision

    if not by.strip():
        raise BadInput("--by must name who decides")
    changes = config.change_management(None)
    cr = changes.get(cr_id)
    decision = "approved" if approved else "rejected"
    cr = record_decision(cr, Approval(by=by.strip(), decision=decision, comment=comment))
    cr = changes.update(cr, message=f"{decision} by {by.strip()}")
    resumed = _resume(cr, approved, by.strip(), comment)
    _emit(cr, as_json, f"{cr.id} {decision} by {by.strip()} ({cr.state.value}){resumed}")


def _resume(cr: ChangeRequest, approved: bool, by: str, comment: str) -> str:
    """Resume the deploy run paused on this CR, waiting briefly for it to reach its pause."""
    if not cr.flow_run_id:
        return ""
    import time
    from uuid import UUID

    from prefect import get_client
    from prefect.flow_runs import resume_flow_run

    run_id = UUID(cr.flow_run_id)
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_paused():
                resume_flow_run(
                    run_id, run_input={"approved": approved, "by": by, "comment": comment}
                )
                return f"; resumed deploy run {run_id}"
            if (state is not None and state.is_final()) or time.monotonic() > deadline:
                name = state.name if state else "unknown"
                return f"; deploy run {run_id} is {name}: rerun the deployment"
            time.sleep(0.5)


@cr_app.command("approve")
def cr_approve(
    cr_id: str,
    by: Annotated[str, typer.Option(help="Who approves.")],
    comment: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a CR waiting for approval and resume its deployment."""
    _decide(cr_id, by, comment, True, as_json)


@cr_app.command("reject")
def cr_reject(
    cr_id: str,
    by: Annotated[str, typer.Option(help="Who rejects.")],
    comment: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Reject a CR waiting for approval; its deployment is cancelled."""
    _decide(cr_id, by, comment, False, as_json)


@cr_app.command("close")
def cr_close(
    cr_id: str,
    category: Annotated[CloseCategory, typer.Option()],
    notes: Annotated[str, typer.Option()] = "",
    by: Annotated[str, typer.Option()] = "changeflow-cli",
    as_json: JsonOpt = False,
) -> None:
    """Close an implemented CR (an emergency one in review, say) with its outcome."""
    from blocks import config
    from changeflow.change import close

    changes = config.change_management(None)
    cr = close(changes.get(cr_id), category, by=by, notes=notes)
    cr = changes.update(cr, message=f"closed {category.value} by {by}")
    _emit(cr, as_json, f"{cr.id} closed {category.value}")


# -- local stack and demo ---------------------------------------------------------------------


def _dev_dir(directory: Path | None) -> Path:
    return (directory or _settings().home / "dev").expanduser().resolve()


@dev_app.command("up")
def dev_up(
    directory: Annotated[Path | None, typer.Option("--dir", help="Where the stack lives.")] = None,
) -> None:
    """Start SeaweedFS, a Prefect server and the git remotes; print `export` lines."""
    from blocks.evidence_locker import EvidenceLocker
    from blocks.local_stack import LocalStack

    root = _dev_dir(directory)
    stack = LocalStack.load(root)
    if stack is None or not all(stack.alive().values()):
        if stack is not None:
            stack.stop()
        typer.echo(f"starting the local stack in {root} ...", err=True)
        stack = LocalStack(root).start()
        EvidenceLocker.from_settings(Settings.from_env(stack.env)).create_bucket()
    for key, value in stack.env.items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@dev_app.command("down")
def dev_down(directory: Annotated[Path | None, typer.Option("--dir")] = None) -> None:
    """Stop what `dev up` started (its data stays in the folder)."""
    from blocks.local_stack import LocalStack

    stack = LocalStack.load(_dev_dir(directory))
    if stack is None:
        typer.echo("no local stack is running")
        return
    stack.stop()
    typer.echo("stopped")


@dev_app.command("status")
def dev_status(directory: Annotated[Path | None, typer.Option("--dir")] = None) -> None:
    """Which services of the local stack are running."""
    from blocks.local_stack import LocalStack

    stack = LocalStack.load(_dev_dir(directory))
    if stack is None:
        typer.echo("no local stack")
        raise typer.Exit(1)
    for service in stack.services:
        state = "running" if stack.alive().get(service.name) else "stopped"
        typer.echo(f"{service.name:<10} {state:<8} {service.url}")


@app.command("demo")
def demo_cmd(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the workspace and print where.")
    ] = False,
) -> None:
    """Run the whole lifecycle on the sample application, on a local stack of its own."""
    from changeflow.demo import run_demo

    run_demo(keep=keep)


def main() -> None:
    """Run the CLI, turning bad input into one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _stderr("aborted")
        sys.exit(130)
    except click_errors.ClickException as exc:
        message = exc.format_message().strip().splitlines()
        _stderr(message[0] if message else "bad usage")
        sys.exit(2)
    except (BadInput, ValidationError) as exc:
        _stderr(_one_line(exc))
        sys.exit(2)
    except (IntegrityError, NotReady, StorageUnavailable) as exc:
        _stderr(str(exc))
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"invalid {where}: {first['msg']}" if where else first["msg"]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _stderr(message: str) -> None:
    typer.echo(f"changeflow: {message}", err=True)


if __name__ == "__main__":
    main()
