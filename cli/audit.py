"""`changeflow audit`: the offline audit package, exported and verified.

`audit export CHG0000123 --output DIR` (or `--environment E [--region R]` for what is deployed
there) writes everything the CRs rest on into DIR (`changeflow.audit_package`); `audit verify
DIR [--trust FILE]` checks it with no network and no credentials: exit 0 when every signature
and hash holds, 1 with one line per problem otherwise, 2 for bad input. The manifest is
signed by the deploy key; with `--trust`, its signature must hold under both trust files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from changeflow.errors import BadInput
from cli._app import JsonOpt, app, emit

if TYPE_CHECKING:
    from changeflow.models import ChangeRequest
    from changeflow.ports import ChangeManagement, Stores

__all__ = ["audit_app", "check", "checkpoint_write", "export", "exported_line"]

audit_app = typer.Typer(help="The offline audit package.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def checkpoint_write(changes: ChangeManagement, cr_id: str) -> None:
    """Checkpoint a CR the command line just wrote, when this process has the deploy key.

    A person's command without the key writes none; the deploy run's next write covers it.
    """
    from blocks.change_management import GitChangeManagement
    from blocks.checkpoints import record_checkpoint
    from blocks.signing import load_signer

    if not isinstance(changes, GitChangeManagement):
        return
    signer = load_signer(role="deploy")
    if signer is None:
        return
    from blocks import stores

    record_checkpoint(changes, stores.evidence_locker(None), cr_id, signer)


def _deployed(opened: Stores, environment: str, region: str) -> list[ChangeRequest]:
    from changeflow.change import deployed_regions
    from tasks.audit import deployers

    tags = deployed_regions(opened.inventory.labels(), environment)
    tags = {r: c for r, c in tags.items() if not region or r == region}
    found = deployers(opened.changes, opened.inventory, environment, tags)
    return [cr for _, cr in sorted(found.items()) if cr is not None]


@audit_app.command("export")
def export_cmd(
    change_request: Annotated[str, typer.Argument(help="The CR to export.")] = "",
    output: Annotated[
        Path | None, typer.Option(help="The package's folder (new or empty).")
    ] = None,
    environment: Annotated[str, typer.Option(help="Export what is deployed here.")] = "",
    region: Annotated[str, typer.Option(help="Only this region of --environment.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Write an offline audit package of a CR, or of what is deployed to an environment."""
    from changeflow.requests import AuditRequest

    if output is None:
        raise BadInput("--output: name the folder to write the package to")
    if bool(change_request) == bool(environment):
        raise BadInput("name one CR, or --environment, to export")
    if region and not environment:
        raise BadInput("--region needs --environment")
    # the same checks as `verify`: a CR id, an environment and region name
    AuditRequest(environment=environment, region=region, change_request=change_request)
    manifest = export(output, change_request, environment, region)
    emit(manifest, as_json, exported_line(manifest, output))


def export(output: Path, change_request: str = "", environment: str = "", region: str = "") -> Any:
    """Write the package of one CR, or of what is deployed to `environment` [`region`]; its
    manifest signed by the deploy key (`CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE` or its fallbacks).

    Raises:
        BadInput: the trust file named in the settings does not exist, or it is set and no
            key it lets sign `audit-package` is.
    """
    from blocks.audit_export import export_package
    from blocks.signing import Trust, load_signer
    from blocks.stores import open_stores
    from changeflow.requests import RecordStores
    from changeflow.settings import Settings

    opened = open_stores(RecordStores.from_env())
    if change_request:
        crs, scope = [opened.changes.get(change_request)], change_request
    else:
        crs = _deployed(opened, environment, region)
        scope = environment + (f"/{region}" if region else "")
    trust = None
    if (path := Settings.from_env().trust_file) is not None:
        if not path.expanduser().is_file():
            raise BadInput(f"CHANGEFLOW_TRUST_FILE: no such file: {path}")
        data = path.expanduser().read_bytes()
        trust = (Trust(data), data)
    return export_package(opened, crs, scope, output, trust, load_signer(role="deploy"))


def exported_line(manifest: Any, output: Path) -> str:
    """What `audit export` says it wrote."""
    return (
        f"exported {', '.join(manifest.change_requests)} ({len(manifest.files)} files) to "
        f"{output}; open {output / 'index.html'}"
    )


@audit_app.command("verify")
def verify_cmd(
    package: Annotated[Path, typer.Argument(help="The package's folder.")],
    trust: Annotated[
        Path | None,
        typer.Option(
            help="Your own copy of the trust file: records are judged by it, the manifest's "
            "signature by it and by the package's."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check an audit package offline; exit 1 when any signature or hash does not hold."""
    if not package.is_dir():
        raise BadInput(f"{package} is not a folder")
    if trust is not None and not trust.is_file():
        raise BadInput(f"--trust: no such file: {trust}")
    ok, human, report = check(package, trust)
    result = {"ok": ok, "checked": report.checked, "problems": report.problems,
              "change_requests": [c.id for c in report.crs],
              "manifest_signed_by": report.signed_by or None}  # fmt: skip
    emit(result, as_json, human)
    if not ok:
        raise typer.Exit(1)


def check(package: Path, trust: Path | None = None) -> tuple[bool, str, Any]:
    """Check a package offline: (whether it holds, what `audit verify` says, the report)."""
    from blocks.audit_verify import check_package

    report = check_package(package, trust)
    ok = not report.problems and report.checked > 0
    crs = ", ".join(c.id for c in report.crs) or "nothing"
    signed = f"; manifest signed by {report.signed_by}" if report.signed_by else ""
    human = (
        f"verified {report.checked} records behind {crs}: every signature and hash holds{signed}"
        if ok
        else "\n".join(
            [f"does not verify: {p}" for p in report.problems]
            + [f"{len(report.problems)} problems in {package}"]
        )
    )
    return ok, human, report
