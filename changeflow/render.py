"""Markdown for people: change requests and evidence summaries."""

from __future__ import annotations

from changeflow.labels import deployed_label
from changeflow.models import ChangeRequest

__all__ = ["markdown_table", "render_change_request"]


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """Render a Markdown table; pipes inside cells are escaped."""

    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_change_request(cr: ChangeRequest) -> str:
    """Render a change request as Markdown for a change board."""
    ready = "yes" if cr.deployment_ready else "no"
    out = [
        f"# {cr.id}: deploy to {cr.environment} / {cr.region}",
        "",
        markdown_table(
            ["field", "value"],
            [
                ["state", cr.state.value],
                ["type", cr.type.value],
                ["priority", cr.priority.value],
                ["assigned to", cr.assigned_to],
                ["deployment ready", ready],
                ["customer impact", cr.customer_impact.value],
                ["deployment impact", cr.deployment_impact.value],
                ["planned start", cr.planned_start.isoformat() if cr.planned_start else ""],
                ["planned end", cr.planned_end.isoformat() if cr.planned_end else ""],
                ["outage (minutes)", str(cr.outage_duration_minutes)],
                ["inventory commit", cr.inventory_commit],
                ["evidence summary", cr.evidence_summary_url or ""],
                ["evidence summary sha256", cr.evidence_summary_sha256 or ""],
                ["close category", cr.close_category.value if cr.close_category else ""],
            ],
        ),
        "",
        "## Description",
        "",
        cr.description or "(none)",
        "",
        f"Purpose: {cr.purpose or '(none)'}",
        "",
        f"Impact: {cr.impact or '(none)'}",
        "",
        "## Readiness",
        "",
    ]
    out += [f"- {reason}" for reason in cr.readiness_reasons] or ["- every required check passed"]
    out += ["", "## Deployment BOM", ""]
    out.append(
        markdown_table(["entry", "sha256"], [[k, v] for k, v in sorted(cr.bom.items())])
        if cr.bom
        else "(nothing)"
    )
    out += ["", "## Delta", ""]
    out += [f"- changed or added: `{name}`" for name in cr.delta]
    out += [f"- deleted: `{name}`" for name in cr.deletions]
    if not (cr.delta or cr.deletions):
        out.append("- (nothing)")
    out += ["", "## Change log", ""]
    out += [
        f"- `{c.entry}`: {c.repository_url} {c.from_commit or '(new)'} → {c.to_commit}"
        for c in cr.change_log
    ] or ["- (none)"]
    out += ["", "## Failed evidence", ""]
    out += [f"- {item}" for item in cr.failed_evidence] or ["- (none)"]
    out += ["", "## Backout plan", "", cr.backout_plan or "(none)", ""]
    out += ["## Rollback", ""]
    label = deployed_label(cr.environment, cr.region)
    if cr.previous_inventory_commit:
        out += [
            f"Before this change `{label}` pointed at inventory commit "
            f"`{cr.previous_inventory_commit}`: its entries are what ran in "
            f"{cr.environment}/{cr.region}, and the deployment BOM above lists what replaces "
            f"them. To roll back, restore those entries on the `{cr.environment}` branch and "
            "deploy them under a new change request; meanwhile the backout plan says how to "
            "undo this deployment by hand. The labels move only when a deployment succeeds, so "
            f"a failed one leaves `{label}` where it was.",
            "",
        ]
    else:
        out += [f"This is the first deployment to {cr.environment}/{cr.region}: roll back by "
                "removing what it installed.", ""]  # fmt: skip
    out += ["## Approvals", ""]
    out += [
        f"- {a.decision} by {a.by} at {a.date.isoformat()}"
        + (" (automatic)" if a.automatic else "")
        + (f": {a.comment}" if a.comment else "")
        for a in cr.approvals
    ] or ["- (none yet)"]
    if cr.close_notes:
        out += ["", "## Closing notes", "", cr.close_notes]
    return "\n".join(out) + "\n"
