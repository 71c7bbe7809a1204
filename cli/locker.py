"""`changeflow locker`: is the evidence bucket able to keep evidence immutable?"""

from __future__ import annotations

import typer

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

    result = EvidenceLocker.from_settings(settings()).check_storage()
    probe = result["probe"]
    rule = result["default_retention"]
    lines = [
        f"bucket {result['bucket']}",
        f"  versioned: {_yes(result['versioned'])}",
        f"  object lock: {_yes(result['locked'])}",
        f"  default rule: {_retention(rule)}",
        f"  probe: {_retention(probe)}",
        f"  retention: {result['retention_days']} days, needs {result['required_days']} "
        f"({result['required_mode']}): {_yes(result['retention_ok'])}",
        "ok" if result["ok"] else "NOT OK: evidence in this bucket is not provably immutable",
    ]
    emit(result, as_json, "\n".join(lines))
    if not result["ok"]:
        raise typer.Exit(1)


def _retention(found: dict[str, object] | None) -> str:
    return f"{found['mode']} {found['days']} days" if found else "none"


def _yes(value: object) -> str:
    return "yes" if value else "no"
