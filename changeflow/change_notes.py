"""How one change to a CR is written down for people: who made it, and the note they read.

Every backend records the same note (a commit message in git, a work note in ServiceNow, a
history entry in memory), so the history reads alike wherever CRs live.
"""

from __future__ import annotations

from changeflow.models import ChangeRequest

__all__ = ["DEFAULT_AUTHOR", "author_of", "describe_change"]

DEFAULT_AUTHOR = "changeflow <changeflow@localhost>"


def describe_change(cr: ChangeRequest, why: str, by: str | None) -> str:
    """Render one state change for people: a commit message, or a ServiceNow work note."""
    lines = [
        f"{cr.id}: {why}",
        "",
        f"state: {cr.state.value}",
        f"environment: {cr.environment}",
        f"region: {cr.region}",
        f"type: {cr.type.value}",
    ]
    if by:
        lines.append(f"by: {by}")
    return "\n".join(lines) + "\n"


def author_of(by: str | None) -> str:
    """The author for `by` ("name <email>"); changeflow's own when nobody is named."""
    if not by:
        return DEFAULT_AUTHOR
    return by if "<" in by else f"{by} <changeflow@localhost>"
