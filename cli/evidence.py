"""`changeflow evidence`: record and read evidence."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from changeflow.errors import BadInput
from changeflow.models import (
    Asset,
    EvidenceResult,
)
from changeflow.names import check_aware_past
from cli._app import (
    JsonOpt,
    emit,
    evidence_app,
    settings,
)


def _observed(value: str | None) -> datetime | None:
    """The `--date` given: ISO 8601 with a time zone, not ahead of now (None: now).

    Raises:
        BadInput: for a date that does not parse, has no time zone, or lies in the future.
    """
    if value is None:
        return None
    try:
        return check_aware_past(datetime.fromisoformat(value))
    except ValueError as exc:
        raise BadInput(f"--date {value!r}: {exc}") from None


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
        str | None,
        typer.Option(help="When it was observed, ISO 8601 with a time zone (default now)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one piece of evidence about one or more assets."""
    from changeflow.evidence import make_evidence
    from changeflow.reports import ReportFormat, parse_report

    if (result is None) == (report is None):
        raise BadInput("give either --result or --report (the report decides the result)")
    observed = _observed(date)
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
        findings=findings, issues=issue or [], summary=summary, date=observed,
    )  # fmt: skip
    from blocks.evidence_locker import EvidenceLocker

    locker = EvidenceLocker.from_settings(settings())
    stored = [locker.store_attachment(path, label) for path, label in files]
    evidence = locker.put_evidence(
        make_evidence(
            evidence_type_id=type_, result=result, tool=tool, scope=scope, assets=assets,
            attachments=stored, findings=findings, issues=issue or [], summary=summary,
            date=draft.date,
        ),
        assets,
    )  # fmt: skip
    emit(evidence, as_json, f"{evidence.id} {evidence.evidence_type_id} {evidence.result.value}")


@evidence_app.command("get")
def evidence_get(evidence_id: str, as_json: JsonOpt = False) -> None:
    """Read one evidence record (re-hashed on read)."""
    from blocks.evidence_locker import EvidenceLocker

    if len(evidence_id) != 64 or any(c not in "0123456789abcdef" for c in evidence_id):
        raise BadInput(f"an evidence id is 64 lowercase hex characters: {evidence_id!r}")
    record = EvidenceLocker.from_settings(settings()).get_evidence(evidence_id)
    human = (
        f"{record.id}\n  type: {record.evidence_type_id}\n  result: {record.result.value}\n"
        f"  tool: {record.details.tool}\n  date: {record.date.isoformat()}\n"
        f"  scope: {record.origin.scope}\n  attachments: {len(record.attachments)}\n"
        f"  findings: {len(record.findings)}"
    )
    emit(record, as_json, human)


@evidence_app.command("summary")
def evidence_summary(
    asset: Annotated[list[str] | None, typer.Option(help="Asset uri (repeatable).")] = None,
    environment: Annotated[str | None, typer.Option(help="Summarize an environment.")] = None,
    region: Annotated[str | None, typer.Option(help="With --environment.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The latest evidence per asset and type, for assets or what an environment holds."""
    from blocks import stores
    from changeflow.labels import deployed_label
    from changeflow.models import asset_id
    from changeflow.render import markdown_table
    from changeflow.summary import summarize

    if bool(asset) == bool(environment):
        raise BadInput("give either --asset or --environment")
    if environment:
        inventory = stores.inventory(None)
        ref = deployed_label(environment, region) if region else environment
        if inventory.resolve(ref) is None:
            raise BadInput(
                f"unknown environment {environment!r}"
                + (f" or region {region!r}" if region else "")
            )
        uris = [e.provenance for e in inventory.entries(ref).values()]
    else:
        uris = list(asset or [])
    assets = {asset_id(u): u for u in uris}
    locker = stores.evidence_locker(None)
    # a record that cannot be read is listed as failed, with the reason, never a crash
    found = locker.find_evidence(assets)
    summary = summarize(
        scope="cli", environment=environment or "", region=region or "", assets=assets,
        records=found.records, unreadable=found.unreadable,
    )  # fmt: skip
    rows = [
        [i.asset_uri, i.evidence_type_id, i.result.value, i.tool, i.evidence_id[:12]]
        for i in summary.evidence
    ]
    table = markdown_table(["asset", "type", "result", "tool", "evidence"], rows)
    reasons = [
        f"evidence {u.evidence_id[:12]} cannot be read: {u.reason}" for u in found.unreadable
    ]
    emit(summary, as_json, "\n".join([table, *reasons]))
