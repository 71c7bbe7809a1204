"""Markdown for people: change requests and evidence summaries.

Every text a person or a tool supplied (comments, descriptions, backout plans, names, report
summaries) goes through `escape_inline`, `escape_block` or `code_span` on its way in, so it
reads as the text it is and cannot forge structure: no headings, list items, table cells,
links, HTML or code fences of its own.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime

from changeflow.approvals import quorum_line
from changeflow.change_content import Arrival, ChangeLogEntry, PullRequestLink
from changeflow.deploying import DEPLOY_FINISHED, DEPLOY_STARTED
from changeflow.labels import deployed_label
from changeflow.models import ChangeRequest, ChangeState
from changeflow.names import has_hidden_characters

__all__ = [
    "change_log_lines",
    "closing_summary",
    "code_span",
    "escape_block",
    "escape_inline",
    "markdown_table",
    "promotion_lines",
    "render_change_request",
]

# what starts a line break in Markdown's eyes (and in Python's splitlines)
_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
# ASCII punctuation that opens Markdown or HTML structure anywhere in a line; `_` is handled
# apart (inside a word it is plain text, as in com.ibm.unit_tests)
_SPECIAL = re.compile(r"[\\`*\[\]<>|~&]")
_LONE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# every printable ASCII character `escape_inline` may change
_ESCAPED = re.compile(r"[\\`*\[\]<>|~&_]")
# what makes a line a heading, list item, quote, thematic break or setext underline
_LINE_MARK = re.compile(r"^(\s*)([#+\-=])")
_LINE_NUMBER = re.compile(r"^(\s*\d+)([.)])")
# a link target that cannot close the link or hold markup of its own
_LINK_SAFE = re.compile(r"^https?://[A-Za-z0-9.\-]+(?::\d+)?(?:/[A-Za-z0-9._~\-/]*)?$")


def _visible(text: str) -> str:
    # control and bidi characters would reorder or hide what a reader sees
    if not has_hidden_characters(text):
        return text
    return "".join("\ufffd" if has_hidden_characters(c) else c for c in text)


def escape_inline(text: str) -> str:
    """Text for the inside of one Markdown line: line breaks become spaces, markup is escaped."""
    if text.isascii() and text.isprintable() and not _ESCAPED.search(text):
        return text  # the common case (names, digests, URLs), one scan instead of five
    flat = _visible(_BREAKS.sub(" ", text))
    escaped = _SPECIAL.sub(lambda m: "\\" + m[0], flat)
    return _LONE_UNDERSCORE.sub(r"\_", escaped)


def escape_block(text: str) -> str:
    """Text of several lines as plain paragraphs: each line escaped, none starting structure."""
    lines = [escape_inline(line) for line in _BREAKS.split(text)]
    lines = [_LINE_NUMBER.sub(r"\1\\\2", _LINE_MARK.sub(r"\1\\\2", line)) for line in lines]
    return "\n".join(lines).strip("\n")


def code_span(text: str) -> str:
    """`text` as inline code, fenced by more backticks than it holds, so it cannot close early."""
    if text.isascii() and text.isprintable() and "`" not in text:
        return f"`{text}`"
    flat = _visible(_BREAKS.sub(" ", text))
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """Render a Markdown table; every cell is escaped text on one line."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(escape_inline(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_change_request(cr: ChangeRequest) -> str:
    """Render a change request as Markdown for a change board."""
    ready = "yes" if cr.deployment_ready else "no"
    out = [
        f"# {cr.id}: deploy to {escape_inline(cr.environment)} / {escape_inline(cr.region)}",
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
                ["deploy command", shlex.join(cr.deploy_command)],
                ["environments file sha256", cr.environments_sha256 or ""],
                ["policy sha256", cr.policy_digest or ""],
            ],
        ),
        "",
        "## Description",
        "",
        escape_block(cr.description) or "(none)",
        "",
        f"Purpose: {escape_inline(cr.purpose) or '(none)'}",
        "",
        f"Impact: {escape_inline(cr.impact) or '(none)'}",
        "",
        "## Readiness",
        "",
    ]
    out += [f"- {escape_inline(reason)}" for reason in cr.readiness_reasons] or [
        "- every required check passed"
    ]
    out += ["", "## Policy in force", ""]
    out.append(_policy(cr))
    out += ["", "## Deployment BOM", ""]
    out.append(
        markdown_table(["entry", "sha256"], [[k, v] for k, v in sorted(cr.bom.items())])
        if cr.bom
        else "(nothing)"
    )
    out += ["", "## Delta", ""]
    out += [f"- changed or added: {code_span(name)}" for name in cr.delta]
    out += [f"- deleted: {code_span(name)}" for name in cr.deletions]
    if not (cr.delta or cr.deletions):
        out.append("- (nothing)")
    if cr.promotions is not None:  # issue 14: what brought each entry of the delta
        out += ["", "## Promotions", "", *promotion_lines(cr)]
    out += ["", "## Change log", "", *change_log_lines(cr.change_log)]
    if cr.delta_authors:  # issue 13: separation of duties keeps them from approving
        authors = ", ".join(
            escape_inline(a.identity) + (" (signed commit)" if a.key else "")
            for a in cr.delta_authors
        )
        out += ["", f"Commit authors (they may not approve it): {authors}"]
    out += ["", "## Failed evidence", ""]
    out += [f"- {escape_inline(item)}" for item in cr.failed_evidence] or ["- (none)"]
    if cr.test_deployments:  # where the same bytes were deployed before (staging for prod)
        out += ["", "## Test deployments", ""]
        out.append(
            markdown_table(
                ["entry", "environment", "region", "change request", "outcome", "acceptance"],
                [
                    [t.entry, t.environment, t.region, t.change_request, t.outcome, t.acceptance]
                    for t in cr.test_deployments
                ],
            )
        )
    if cr.gate_overrides:
        out += ["", "## Promotion gate overridden (emergency)", ""]
        out += [f"- {escape_inline(line)}" for line in cr.gate_overrides]
    out += ["", "## Backout plan", "", escape_block(cr.backout_plan) or "(none)", ""]
    out += ["## Rollback", ""]
    label = code_span(deployed_label(cr.environment, cr.region))
    place = escape_inline(f"{cr.environment}/{cr.region}")
    if cr.previous_inventory_commit:
        out += [
            f"Before this change {label} pointed at inventory commit "
            f"{code_span(cr.previous_inventory_commit)}: its entries are what ran in "
            f"{place}, and the deployment BOM above lists what replaces "
            f"them. To roll back, restore those entries on the {code_span(cr.environment)} "
            "branch and deploy them under a new change request; meanwhile the backout plan says "
            "how to undo this deployment by hand. The labels move only when a deployment "
            f"succeeds, so a failed one leaves {label} where it was.",
            "",
        ]
    else:
        out += [f"This is the first deployment to {place}: roll back by "
                "removing what it installed.", ""]  # fmt: skip
    out += ["## Approvals", ""]
    out += [
        f"- {a.decision} by {escape_inline(a.by)} at {a.date.isoformat()}"
        + (" (automatic)" if a.automatic else "")
        + (" (signed)" if a.signature else "")
        + (f" (in {escape_inline(a.source)})" if a.source else "")
        + (f": {escape_inline(a.comment)}" if a.comment else "")
        for a in cr.approvals
    ] or ["- (none yet)"]
    # issue 13: who has approved in this round, and how many more the quorum takes
    out += ["", f"Quorum: {escape_inline(quorum_line(cr))}."]
    if cr.close_notes:
        out += ["", "## Closing notes", "", escape_block(cr.close_notes)]
    if cr.state is ChangeState.closed:
        out += ["", "## Closing summary", "", *closing_summary(cr)]
    return "\n".join(out) + "\n"


def _pull_request(link: PullRequestLink) -> str:
    # the url is built by `changeflow.change_log.web_url` or given by the forge: a link only
    # when it holds nothing that could end the link early
    if link.url and _LINK_SAFE.match(link.url):
        return f"[#{link.number}]({link.url})"
    return f"#{link.number}"


def promotion_lines(cr: ChangeRequest) -> list[str]:
    """The promotions that brought a CR's delta, each with its entries, and the entries written
    straight to the environment branch, as Markdown list items."""
    brought: dict[str | None, list[Arrival]] = {}
    for arrival in cr.arrivals or []:
        brought.setdefault(arrival.promotion, []).append(arrival)

    def named(arrivals: list[Arrival]) -> str:
        return ", ".join(
            code_span(a.entry) + (" (deleted)" if a.entry in cr.deletions else "") for a in arrivals
        )

    out = []
    for p in cr.promotions or []:
        request = f", pull request {_pull_request(p.pull_request)}" if p.pull_request else ""
        out.append(
            f"- promotion {code_span(p.id)} from {escape_inline(p.source)}{request}: "
            f"priority {p.priority.value}, assigned to {escape_inline(p.assigned_to)}"
            + (" (emergency)" if p.emergency else "")
            + (f"; brought {named(brought[p.id])}" if p.id in brought else "")
        )
    for arrival in brought.get(None, []):
        out.append(
            f"- {code_span(arrival.entry)}: no promotion: written directly to "
            f"{escape_inline(cr.environment)} in commit {code_span(arrival.commit)}"
        )
    return out or ["- (none: nothing in the delta came through the environment's branch)"]


def change_log_lines(change_log: list[ChangeLogEntry]) -> list[str]:
    """Each entry's application commits (a nested list), or why they could not be read."""
    out = []
    for c in change_log:
        out.append(
            f"- {code_span(c.entry)}: {escape_inline(c.repository_url)} "
            f"{escape_inline(c.from_commit or '(new)')} → {escape_inline(c.to_commit)}"
        )
        if c.error is not None:
            out.append(f"  - the change log could not be read: {escape_inline(c.error)}")
            continue
        for commit in c.commits or []:
            request = f" ({_pull_request(commit.pull_request)})" if commit.pull_request else ""
            out.append(f"  - {code_span(commit.sha[:12])} {escape_inline(commit.message)}{request}")
        if c.more:
            out.append(f"  - and {c.more} more {'commit' if c.more == 1 else 'commits'}")
        elif c.commits == []:
            out.append("  - (no commits between them)")
    return out or ["- (none)"]


def closing_summary(cr: ChangeRequest) -> list[str]:
    """What a closed CR's deployment ran, what its acceptance tests said and how long it took,
    as Markdown list items (read from the CR's own history)."""
    started = _first(cr, "deploy", DEPLOY_STARTED) or _first(cr, "to", "implement")
    finished = _first(cr, "deploy", DEPLOY_FINISHED)
    closed = _first(cr, "to", "closed")
    ran = shlex.join(cr.deploy_command) if cr.deploy_command else "(not recorded)"
    lines = [
        f"- outcome: {cr.close_category.value if cr.close_category else '(none)'}",
        f"- deploy command: {code_span(ran)}"
        + (f", exit {finished['exit']}" if finished and "exit" in finished else ""),
        "- acceptance evidence: "
        + (", ".join(code_span(e) for e in cr.acceptance_evidence) or "(none recorded)"),
    ]
    if started and closed:
        took = datetime.fromisoformat(closed["date"]) - datetime.fromisoformat(started["date"])
        lines.append(f"- took {int(took.total_seconds())} s from the deployment's start to closing")
    return lines


def _first(cr: ChangeRequest, key: str, value: str) -> dict[str, str] | None:
    return next((h for h in cr.history if h.get(key) == value and "date" in h), None)


def _policy(cr: ChangeRequest) -> str:
    """The recorded policy's checks as a table (a CR filed before policies were recorded has
    none; a policy with no checks is said so, since it lets anything through)."""
    if not cr.policy:
        return "(not recorded)"
    checks = cr.policy.get("checks")
    rows = [
        [str(c.get("evidence_type_id", "")), str(c.get("level", ""))]
        for c in (checks if isinstance(checks, list) else [])
        if isinstance(c, dict)
    ]
    if not rows:
        return "(no checks: every deployment counts as ready)"
    return markdown_table(["evidence type", "level"], rows)
