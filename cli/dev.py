"""`changeflow dev` and `changeflow demo`: a local stack, and the lifecycle on it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from changeflow.settings import Settings
from cli._app import (
    app,
    dev_app,
    settings,
)


def _dev_dir(directory: Path | None) -> Path:
    return (directory or settings().home / "dev").expanduser().resolve()


@dev_app.command("up")
def dev_up(
    directory: Annotated[Path | None, typer.Option("--dir", help="Where the stack lives.")] = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth", help="The Prefect API answers only clients with PREFECT_API_AUTH_STRING."
        ),
    ] = False,
) -> None:
    """Start SeaweedFS, a Prefect server and the git remotes; make signing keys; print `export`
    lines."""
    from blocks.evidence_locker import EvidenceLocker
    from cli.local_stack import LocalStack

    root = _dev_dir(directory)
    stack = LocalStack.load(root)
    if stack is None or not all(stack.alive().values()):
        if stack is not None:
            stack.stop()
        typer.echo(f"starting the local stack in {root} ...", err=True)
        stack = LocalStack(root).start(auth=auth)
        EvidenceLocker.from_settings(Settings.from_env(stack.env)).create_bucket()
    from cli.keys import ensure_keys

    # the stack's own CI and deploy keys and the trust file naming them (kept across restarts)
    env = {**stack.env, **ensure_keys(root / "keys")}
    for key, value in env.items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@dev_app.command("down")
def dev_down(directory: Annotated[Path | None, typer.Option("--dir")] = None) -> None:
    """Stop what `dev up` started (its data stays in the folder)."""
    from cli.local_stack import LocalStack

    stack = LocalStack.load(_dev_dir(directory))
    if stack is None:
        typer.echo("no local stack is running")
        return
    stack.stop()
    typer.echo("stopped")


@dev_app.command("status")
def dev_status(directory: Annotated[Path | None, typer.Option("--dir")] = None) -> None:
    """Which services of the local stack are running."""
    from cli.local_stack import LocalStack

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
    from cli.demo import run_demo

    run_demo(keep=keep)
