"""The command tree and what every command shares: output and settings."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from changeflow.settings import Settings

__all__ = [
    "JsonOpt",
    "app",
    "cr_app",
    "dev_app",
    "emit",
    "evidence_app",
    "inventory_app",
    "settings",
]

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


def emit(value: Any, as_json: bool, human: str) -> None:
    """Print `value` as one JSON document, or the `human` text."""
    if as_json:
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_none=True)
        typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
    else:
        typer.echo(human)


def settings() -> Settings:
    return Settings.from_env()
