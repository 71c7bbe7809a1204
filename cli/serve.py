"""`changeflow serve`: every deployment of `prefect.yaml`, served from one process.

`prefect deploy --all` registers the same deployments for the workers of a process work pool;
`serve` is the way without a worker: one long-running process that registers them (schedules
included) and runs their flow runs itself. Both read `prefect.yaml`, the one list of deployments.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from changeflow.errors import BadInput
from changeflow.project import Environments, load_environments
from changeflow.settings import Settings
from changeflow.windows import outside_windows
from cli._app import app

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

__all__ = [
    "deployment_specs",
    "project_file",
    "runner_deployments",
    "schedules_outside_windows",
    "serve_cmd",
]

PROJECT_FILE = "prefect.yaml"


def project_file(path: Path | None = None) -> Path:
    """`path`, else `prefect.yaml` in the working folder, else the one of this source checkout."""
    if path is not None:
        if not path.is_file():
            raise BadInput(f"no such deployments file: {path}")
        return path.resolve()
    checkout = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd() / PROJECT_FILE, checkout / PROJECT_FILE):
        if candidate.is_file():
            return candidate
    raise BadInput(f"no {PROJECT_FILE} here: pass --file")


def deployment_specs(path: Path) -> list[dict[str, Any]]:
    """The `deployments:` list of a prefect.yaml (YAML anchors resolved)."""
    import yaml  # type: ignore[import-untyped]  # PyYAML comes with Prefect, its stubs do not

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML: {exc}") from exc
    specs = data.get("deployments") if isinstance(data, dict) else None
    if not isinstance(specs, list) or not all(
        isinstance(s, dict) and s.get("name") and s.get("entrypoint") for s in specs
    ):
        raise BadInput(f"{path}: `deployments` must list entries with a name and an entrypoint")
    return specs


def schedules_outside_windows(
    specs: list[dict[str, Any]], environments: Environments, days: int = 366
) -> list[str]:
    """The deploy schedules that would start a run outside its environment's change windows.

    Each cron schedule of a deploy deployment is expanded by Prefect's own scheduler code over
    the next `days` (so daylight saving changes are covered) and every start is checked against
    the weekly windows of the environment it deploys. Freezes are left to the deploy flow.

    Returns:
        One line per offending schedule, naming its first start outside the windows.
    """
    from prefect.server.schemas.schedules import CronSchedule

    now = datetime.now(UTC)
    problems = []
    for spec in specs:
        request = (spec.get("parameters") or {}).get("request") or {}
        if not str(spec["entrypoint"]).endswith(":deploy") or not request.get("environment"):
            continue
        environment = request["environment"]
        windows = environments.get(environment, request.get("region")).change_windows
        for item in spec.get("schedules") or []:
            if windows is None or not item.get("cron"):
                continue
            schedule = CronSchedule(
                cron=item["cron"],
                timezone=item.get("timezone") or "UTC",
                day_or=item.get("day_or", True),
            )
            starts = asyncio.run(schedule.get_dates(start=now, end=now + timedelta(days=days)))
            outside = outside_windows(windows, starts)
            if outside:
                first = outside[0].astimezone(windows.zone)
                problems.append(
                    f"{spec['name']}: `{item['cron']}` ({schedule.timezone}) starts at "
                    f"{first:%a %Y-%m-%d %H:%M} {windows.timezone}, outside the change "
                    f"windows of {environment} ({len(outside)} of {len(starts)} starts in "
                    f"{days} days)"
                )
    return problems


def _entrypoint(root: Path, entrypoint: str) -> str:
    file, _, function = str(entrypoint).rpartition(":")
    if not file or not function:
        raise BadInput(f"entrypoint {entrypoint!r} is not `path/to/file.py:flow_function`")
    return f"{root / file}:{function}"


def runner_deployments(
    path: Path, names: list[str] | None = None, pause_schedules: bool = False
) -> list[RunnerDeployment]:
    """Build the deployments of `path` as `flow.to_deployment(...)` objects for `prefect.serve`.

    Args:
        path: the prefect.yaml.
        names: only these deployments (`name` or `flow/name`); every one when empty.
        pause_schedules: register the schedules inactive (start them from the UI).
    """
    from prefect.flows import Flow, load_flow_from_entrypoint
    from prefect.schedules import Cron, Interval, RRule, Schedule

    wanted = set(names or [])
    built: list[RunnerDeployment] = []
    found: set[str] = set()
    specs = deployment_specs(path)
    environments_file = Settings.from_env().environments_file
    if environments_file:
        problems = schedules_outside_windows(specs, load_environments(Path(environments_file)))
        if problems:
            raise BadInput(f"{path}: {problems[0]}")
    for spec in specs:
        flow: Flow[..., Any] = load_flow_from_entrypoint(
            _entrypoint(path.parent, spec["entrypoint"])
        )
        full = f"{flow.name}/{spec['name']}"
        if wanted and not wanted & {spec["name"], full}:
            continue
        found |= {spec["name"], full}
        schedules: list[Schedule] = []
        for item in spec.get("schedules") or []:
            common: dict[str, Any] = {
                "active": bool(item.get("active", True)) and not pause_schedules,
                "parameters": item.get("parameters") or {},
            }
            if item.get("cron"):
                schedules.append(
                    Cron(
                        item["cron"],
                        timezone=item.get("timezone"),
                        day_or=item.get("day_or", True),
                        **common,
                    )
                )
            elif item.get("interval"):
                schedules.append(
                    Interval(item["interval"], timezone=item.get("timezone"), **common)
                )
            elif item.get("rrule"):
                schedules.append(RRule(item["rrule"], timezone=item.get("timezone"), **common))
            else:
                raise BadInput(f"{full}: a schedule needs cron, interval or rrule")
        runner = flow.to_deployment(
            name=spec["name"],
            description=spec.get("description"),
            tags=list(spec.get("tags") or []),
            parameters=dict(spec.get("parameters") or {}),
            schedules=schedules,
            concurrency_limit=spec.get("concurrency_limit"),
            version=spec.get("version"),
        )
        assert not inspect.isawaitable(runner)  # a sync call outside any event loop
        built.append(runner)
    missing = wanted - found
    if missing:
        raise BadInput(f"no deployment named {', '.join(sorted(missing))} in {path}")
    return built


@app.command("serve")
def serve_cmd(
    file: Annotated[
        Path | None, typer.Option("--file", help="The deployments file (default prefect.yaml).")
    ] = None,
    deployment: Annotated[
        list[str] | None,
        typer.Option("--deployment", "-d", help="Serve only this one (name or flow/name)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many flow runs at once.", min=1)
    ] = None,
    pause_schedules: Annotated[
        bool, typer.Option("--pause-schedules", help="Register the schedules inactive.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Check the deployments and their schedules, then exit."),
    ] = False,
) -> None:
    """Serve every deployment of prefect.yaml (schedules included) from this one process.

    With CHANGEFLOW_ENVIRONMENTS set, a deploy schedule that would start outside its
    environment's change windows is refused, and the run forms offer its environments.
    """
    from prefect import serve

    deployments = runner_deployments(project_file(file), deployment, pause_schedules)
    if check:
        checked = (
            "every deploy schedule starts inside its change windows"
            if Settings.from_env().environments_file
            else "schedules not checked: CHANGEFLOW_ENVIRONMENTS is not set"
        )
        typer.echo(f"{len(deployments)} deployments load; {checked}")
        return
    typer.echo(
        f"serving {len(deployments)} deployments: "
        + ", ".join(f"{d.flow_name}/{d.name}" for d in deployments),
        err=True,
    )
    serve(*deployments, limit=limit)
