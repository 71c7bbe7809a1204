"""`changeflow locker`: is the evidence bucket able to keep evidence immutable?"""

from __future__ import annotations

import typer

from changeflow.storage import Retention
from cli._app import JsonOpt, app, emit, settings

__all__ = ["locker_app"]

locker_app = typer.Typer(help="The evidence locker's bucket.", no_args_is_help=True)
app.add_typer(locker_app, name="locker")


@locker_app.command("check")
def locker_check(as_json: JsonOpt = False) -> None:
    """Check the bucket is versioned, locked and retains at least the configured days.

    Retention is the shortest of the bucket's default rule (when it has one) and of a probe
    object the locker writes like any evidence and reads back (RetainUntilDate - LastModified,
    whole days); it must reach the locker's `retention_days` in its `retention_mode`. See
    `EvidenceLocker.check_storage`. Exit 0 when all three hold, 1 otherwise.
    """
    from blocks.evidence_locker import EvidenceLocker

    check = EvidenceLocker.from_settings(settings()).check_storage()
    lines = [
        f"bucket {check.bucket}",
        f"  versioned: {_yes(check.versioned)}",
        f"  object lock: {_yes(check.locked)}",
        f"  default rule: {_retention(check.default_retention)}",
        f"  probe: {_retention(check.probe)}",
        f"  retention: {check.retention_days} days, needs {check.required_days} "
        f"({check.required_mode}): {_yes(check.retention_ok)}",
        "ok" if check.ok else "NOT OK: evidence in this bucket is not provably immutable",
    ]
    emit(check, as_json, "\n".join(lines))
    if not check.ok:
        raise typer.Exit(1)


def _retention(found: Retention | None) -> str:
    return f"{found.mode} {found.days} days" if found else "none"


def _yes(value: bool) -> str:
    return "yes" if value else "no"
