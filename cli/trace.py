"""`changeflow trace`: what happened to an artifact, or to everything running in an environment.

Read only: the inventory (the builds), the evidence locker (their evidence), change management
(every deployment, with its acceptance results) and the incidents. A subject that names nothing
recorded is bad input (exit 2, one line), as an unknown CR id is for `cr get`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from changeflow.errors import BadInput
from changeflow.names import has_hidden_characters, validate_environment, validate_region
from cli._app import JsonOpt, app, emit

__all__ = ["trace_cmd"]


def _check(subject: str | None, environment: str | None, region: str | None) -> str:
    """Check the arguments before any store is opened; return the trace's subject."""
    if environment is None:
        if region is not None:
            raise BadInput("--region needs --environment")
        if subject is None or not subject.strip():
            raise BadInput(
                "trace needs an entry name, an artifact uri or a CR id (or --environment)"
            )
        if has_hidden_characters(subject) or len(subject) > 1024:
            raise BadInput(f"not an entry name, artifact uri or CR id: {subject[:80]!r}")
        return subject
    if subject is not None:
        raise BadInput("give either a subject or --environment, not both")
    try:
        validate_environment(environment)
        if region is not None:
            validate_region(region)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    return f"{environment}/{region}" if region else environment


@app.command("trace")
def trace_cmd(
    subject: Annotated[
        str | None, typer.Argument(help="An entry name, an artifact uri or a CR id.")
    ] = None,
    environment: Annotated[
        str | None, typer.Option(help="Trace everything running in this environment.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="Only this region of it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """An artifact's builds and their evidence, its deployments and its incidents."""
    asked = _check(subject, environment, region)
    from blocks.stores import open_stores
    from changeflow.requests import RecordStores, project_environments
    from changeflow.trace import render_trace
    from tasks.history import read_trace

    trace = read_trace(
        open_stores(RecordStores.from_env()),
        asked,
        environment=environment,
        region=region,
        branches=sorted(project_environments().environments),
        today=datetime.now(UTC).date(),
    )
    if environment is None and not trace.artifacts:
        raise BadInput(f"{asked}: no entry, artifact or change request of that name is recorded")
    emit(trace, as_json, render_trace(trace))
