"""The lifecycle commands: promote, ci, deploy, verify."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from changeflow.errors import BadInput
from changeflow.inventory_rules import promotion_branch
from changeflow.models import CustomerImpact, DeploymentImpact, Priority, Promotion
from changeflow.names import has_hidden_characters
from changeflow.requests import (
    AuditRequest,
    BuildRequest,
    DeploymentRequest,
    PromotionRequest,
    RecordStores,
    deployment_spec,
)
from cli._app import (
    JsonOpt,
    app,
    emit,
)


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
    emergency: Annotated[
        bool, typer.Option("--emergency", help="Urgent: also overrides the promotion gate.")
    ] = False,
    review: Annotated[bool, typer.Option("--review", help="Leave it open for approval.")] = False,
    merge: Annotated[str | None, typer.Option(help="Merge a promotion left open.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote artifacts from one environment to another (or merge one left for review)."""
    if merge:
        from flows.promote_flow import merge_promotion

        commit = merge_promotion(merge, RecordStores.from_env())
        emit({"promotion": merge, "commit": commit}, as_json, f"merged {merge} at {commit}")
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
    request = PromotionRequest.model_validate(
        dict(
            source=source, target=target, priority=priority, assigned_to=assigned_to,
            description=description, backout_plan=backout_plan, purpose=purpose, impact=impact,
            customer_impact=customer_impact, deployment_impact=deployment_impact,
            include=include or [], exclude=exclude or [], emergency=emergency, review=review,
        )
    )  # fmt: skip
    from blocks import stores
    from flows.promote_flow import promote

    # "nothing to promote" is an answer, not a failed run: say it before a run starts
    stores.inventory(None).promotable(
        request.source, request.target, request.include, request.exclude
    )

    promotion = promote(request, RecordStores.from_env())
    state = "open for review" if review else "merged"
    # an emergency that went past the gate says so, entry by entry, as the promotion records it
    overridden = "".join(f"\n  gate overridden: {line}" for line in promotion.gate_overrides)
    emit(promotion, as_json, f"promotion {promotion.id}: {len(promotion.entries)} entries "
          f"{source} -> {target} ({state}){overridden}"
          f"{_where_it_waits(promotion) if review else ''}")  # fmt: skip


def _where_it_waits(promotion: Promotion) -> str:
    """For a promotion left for review: its branch, its pull request, and how to merge it."""
    said = f"\n  waits on branch {promotion_branch(promotion.target, promotion.id)}"
    if pr := promotion.pull_request:
        # the forge's answer: a link holding control characters could rewrite the terminal
        plain = pr.url and not has_hidden_characters(pr.url)
        said += f"\n  pull request #{pr.number}" + (f": {pr.url}" if plain else "")
    return f"{said}\n  merge it with: changeflow promote --merge {promotion.id}"


@app.command("ci")
def ci_cmd(
    repo: Annotated[str, typer.Option(help="Git URL of the application.")],
    commit: Annotated[str, typer.Option(help="The commit to build (40 hex).")],
    build_number: Annotated[
        str,
        typer.Option(help="The CI system's build id: a rerun of the same build carries on."),
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Build a commit, record its evidence and its inventory entries."""
    request = BuildRequest(repo_url=repo, commit_sha=commit, build_number=build_number)
    from flows.ci_flow import ci

    result = ci(request, RecordStores.from_env())
    failed = f"; failing checks: {', '.join(result.failed_checks)}" if result.failed_checks else ""
    emit(result, as_json, f"ci {result.scope}: {len(result.recorded)} entries recorded, "
          f"{len(result.evidence)} evidence{failed}")  # fmt: skip


@app.command("deploy")
def deploy_cmd(
    environment: Annotated[str, typer.Option()],
    region: Annotated[str, typer.Option()],
    command: Annotated[
        str | None,
        typer.Option(help="Deploy command (split like a shell, run without one); local use."),
    ] = None,
    environments: Annotated[
        Path | None, typer.Option(help="environments.toml (default CHANGEFLOW_ENVIRONMENTS).")
    ] = None,
    force: Annotated[bool, typer.Option("--force")] = False,
    emergency: Annotated[bool, typer.Option("--emergency")] = False,
    change_request: Annotated[
        str, typer.Option(help="Carry on with this CR (its delta and its summary).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Deploy what changed to one environment and region under its own change request.

    `--command` and `--environments` are this process's own choice: the flow runs here, so they
    reach it through `flows.local_deployment`, never as a run's parameters.
    """
    request = DeploymentRequest(
        environment=environment, region=region, force=force, emergency=emergency,
        change_request=change_request,
    )  # fmt: skip
    argv = shlex.split(command) if command else []
    # bad input is refused before a run starts
    deployment_spec(request, command=argv, environments_file=str(environments or ""))
    from blocks import stores
    from flows.deploy_flow import run_deploy
    from flows.local_deployment import use_local_deployment

    if stores.inventory(None).resolve(environment) is None:
        raise BadInput(f"unknown environment {environment!r}: the inventory has no such branch")
    with use_local_deployment(argv, str(environments or "")):
        outcome = run_deploy(request, RecordStores.from_env())
    human = f"{outcome.change_request or '-'} {environment}/{region}: {outcome.message}"
    if outcome.change_request:
        human += f" ({outcome.state}" + (
            f", {outcome.close_category})" if outcome.close_category else ")"
        )
    emit(outcome, as_json, human)
    if outcome.close_category in ("unsuccessful", "cancelled") or outcome.state == "cancelled":
        raise typer.Exit(1)


@app.command("verify")
def verify_cmd(
    environment: Annotated[str, typer.Option()] = "",
    region: Annotated[str, typer.Option()] = "",
    change_request: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Re-hash every record behind a deployment; exit 1 when anything does not verify."""
    request = AuditRequest(environment=environment, region=region, change_request=change_request)
    from flows.audit_flow import verify

    report = verify(request, RecordStores.from_env())
    what = ", ".join(report.targets)
    if report.ok:
        human = (f"verified {report.checked} records behind {what} "
                 f"({', '.join(report.change_requests)}): every hash matches")  # fmt: skip
    else:
        human = "\n".join([f"does not verify: {b}" for b in report.broken]
                          + [f"{len(report.broken)} problems behind {what}"])  # fmt: skip
    emit(report.model_dump() | {"ok": report.ok}, as_json, human)
    if not report.ok:
        raise typer.Exit(1)
