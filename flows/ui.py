"""What a deploy run shows release managers: artifacts with stable keys, and events.

Keys are stable per environment and region, so the Artifacts page keeps the history of each.
Events carry the CR as their resource, so Automations can react without code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event

from changeflow.change import change_event
from changeflow.delta import Delta
from changeflow.models import ChangeRequest
from changeflow.render import code_span, escape_inline, markdown_table, render_change_request
from changeflow.summary import EvidenceSummary
from flows.ui_publishing import publish

__all__ = [
    "Progress",
    "announce_change",
    "artifact_key",
    "emit_change_event",
    "emit_evidence_failed",
    "publish_change_request",
    "publish_delta",
    "publish_summary",
    "show_progress",
    "start_progress",
]

# how far along a deployment is, by the state its CR has reached
_PROGRESS = {"assess": 20.0, "authorize": 40.0, "scheduled": 60.0, "implement": 80.0}


def artifact_key(kind: str, environment: str, region: str) -> str:
    """A stable artifact key: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{kind}-{environment}-{region}".lower()).strip("-")


def publish_change_request(cr: ChangeRequest, link: str | None = None) -> None:
    """The CR as rendered, and a link to its record."""
    markdown = render_change_request(cr)
    publish(
        create_markdown_artifact,
        key=artifact_key("change-request", cr.environment, cr.region),
        markdown=markdown,
        description=f"{cr.id} ({cr.state.value})",
    )
    if link:
        publish(
            create_link_artifact,
            key=artifact_key("change-request-link", cr.environment, cr.region),
            link=link,
            link_text=f"{cr.id} in change management",
        )


def publish_summary(summary: EvidenceSummary, url: str, sha256: str) -> None:
    """The evidence summary as a table: pass or fail per evidence type, with links."""
    rows = [
        [
            item.evidence_type_id,
            "pass" if item.result.value == "success" else item.result.value.upper(),
            item.asset_uri,
            item.tool,
            item.summary or "",
            item.evidence_id[:12],
        ]
        for item in sorted(summary.evidence, key=lambda i: (i.evidence_type_id, i.asset_uri))
    ]
    markdown = "\n\n".join(
        [
            # the names are checked, the url is the locker's own: escaped all the same
            f"# Evidence summary: {escape_inline(summary.environment)} / "
            f"{escape_inline(summary.region)}",
            f"Stored at {code_span(url)} ({escape_inline(sha256)}).",
            markdown_table(["evidence type", "result", "asset", "tool", "summary", "id"], rows)
            if rows
            else "No evidence was found for the delta.",
        ]
    )
    publish(
        create_markdown_artifact,
        key=artifact_key("evidence-summary", summary.environment, summary.region),
        markdown=markdown,
        description=f"{len(summary.failed)} of {len(summary.evidence)} not passing",
    )


def publish_delta(delta: Delta, environment: str, region: str) -> None:
    """The delta as a table: one row per entry that changes."""
    rows: list[dict[str, Any]] = [
        {
            "entry": name,
            "change": "added" if name in delta.added else "changed",
            "version": delta.entries[name].version,
            "sha256": delta.entries[name].sha256,
            "commit": delta.entries[name].commit_sha[:12],
        }
        for name in delta.updated
    ]
    rows += [
        {"entry": n, "change": "deleted", "version": "", "sha256": "", "commit": ""}
        for n in delta.deleted
    ]
    publish(
        create_table_artifact,
        table=rows,
        key=artifact_key("delta", environment, region),
        description="What changes",
    )


def _resource(cr: ChangeRequest) -> dict[str, str]:
    return {
        "prefect.resource.id": f"changeflow.change_request.{cr.id}",
        "prefect.resource.name": cr.id,
        "changeflow.environment": cr.environment,
        "changeflow.region": cr.region,
        "changeflow.state": cr.state.value,
    }


def emit_change_event(name: str, cr: ChangeRequest, **payload: Any) -> None:
    """Emit `changeflow.<name>` about a CR (created, approved, rejected, closed, ...)."""
    related = [
        {
            "prefect.resource.id": "prefect.artifact."
            + artifact_key("change-request", cr.environment, cr.region),
            "prefect.resource.role": "artifact",
        }
    ]
    emit_event(
        event=f"changeflow.{name}",
        resource=_resource(cr),
        related=related,
        payload={
            "deployment_ready": cr.deployment_ready,
            "close_category": cr.close_category.value if cr.close_category else None,
            "reasons": cr.readiness_reasons,
            **payload,
        },
    )


def announce_change(before: ChangeRequest | None, after: ChangeRequest) -> None:
    """Emit the event a change to a CR calls for (`changeflow.change.change_event`), if any."""
    event = change_event(before, after)
    if event is not None:
        emit_change_event(event.name, after, **event.payload)


def emit_evidence_failed(summary: EvidenceSummary, cr: ChangeRequest) -> None:
    """Emit `changeflow.evidence.failed` once per failing piece of evidence in a summary."""
    for item in summary.failed:
        emit_event(
            event="changeflow.evidence.failed",
            resource={
                "prefect.resource.id": f"changeflow.evidence.{item.evidence_id}",
                "changeflow.evidence_type": item.evidence_type_id,
                "changeflow.asset": item.asset_uri,
            },
            related=[{**_resource(cr), "prefect.resource.role": "change-request"}],
            payload={"result": item.result.value, "tool": item.tool, "summary": item.summary},
        )


@dataclass
class Progress:
    """A run's progress artifact, once the API has created it."""

    artifact: UUID | None = None


def start_progress(cr: ChangeRequest) -> Progress:
    """A progress artifact for the run, at where its CR is; `show_progress` moves it on."""
    progress = Progress()

    def create() -> None:
        # async_dispatch types both forms; the deploy flow is sync, so it runs the sync one
        progress.artifact = cast(
            UUID,
            create_progress_artifact(
                _percent(cr),
                key=artifact_key("deployment-progress", cr.environment, cr.region),
                description=f"{cr.id}: {cr.state.value}",
            ),
        )

    publish(create)
    return progress


def show_progress(progress: Progress, cr: ChangeRequest) -> None:
    """Move the run's progress to where its CR is."""

    def update() -> None:
        if progress.artifact is not None:  # None: its creation failed, and was logged
            update_progress_artifact(
                progress.artifact, _percent(cr), description=f"{cr.id}: {cr.state.value}"
            )

    publish(update)


def _percent(cr: ChangeRequest) -> float:
    return _PROGRESS.get(cr.state.value, 100.0)
