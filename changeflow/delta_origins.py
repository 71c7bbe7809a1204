"""Where a delta's entries came from: the promotion (or direct write) that brought each one,
and the CR fields those promotions give.

An environment branch's history, read first-parent from the deployed commit to its head, is a
series of commits; the one that last changed an entry brought its current content. A commit
that changes `.promotion.json` merged a promotion (the record in it); any other commit wrote
the branch directly. A promotion opened as a pull request notes the request in a later commit
on its branch that changes `.promotion.json` only: its record replaces the one before when it
is the same promotion.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from changeflow.change_content import Arrival
from changeflow.models import CustomerImpact, DeploymentImpact, Priority, Promotion

__all__ = ["PROMOTION_FILE", "Origins", "direct_line", "promotion_fields", "trace_origins"]

PROMOTION_FILE = ".promotion.json"
"""Where a promotion carries its record, on its branch and on each commit that merges it."""

# what a CR takes from a single promotion as it is
_COPIED = {
    "priority", "assigned_to", "description", "purpose", "impact", "customer_impact",
    "deployment_impact", "backout_plan",
}  # fmt: skip


class Origins(BaseModel):
    """How a delta's entries reached their environment.

    Attributes:
        promotions: the promotions that brought at least one entry, newest first.
        arrivals: per entry (sorted by name), the commit that brought it and its promotion.
    """

    promotions: list[Promotion] = Field(default_factory=list)
    arrivals: list[Arrival] = Field(default_factory=list)

    @property
    def emergency(self) -> bool:
        """Whether any of its promotions was an emergency (`promote --emergency`)."""
        return any(p.emergency for p in self.promotions)


def trace_origins(
    history: Sequence[tuple[str, Collection[str]]],
    names: Iterable[str],
    read: Callable[[str], Promotion | None],
) -> Origins:
    """The origins of entries `names`, from an environment branch's history.

    Args:
        history: (commit, paths it changed) newest first, first-parent, from the environment's
            head down to (not including) the deployed commit; paths other than `names` and
            `.promotion.json` may be left out.
        names: the delta's entries (changed, added and deleted).
        read: the promotion record stored at a commit, or None.

    An entry no commit of `history` changed has no arrival.
    """
    wanted = set(names)
    found: dict[str, int] = {}
    for index, (_, paths) in enumerate(history):
        for name in wanted.intersection(paths).difference(found):
            found[name] = index
    records: dict[int, Promotion | None] = {
        index: _promotion_at(history, index, read) for index in sorted(set(found.values()))
    }
    ids = {index: record.id if record else None for index, record in records.items()}
    arrivals = [
        Arrival(entry=name, commit=history[index][0], promotion=ids[index])
        for name, index in sorted(found.items())
    ]
    newest: dict[str, Promotion] = {}
    for index in sorted(records):  # newest first: the first record of an id wins
        record = records[index]
        if record is not None:
            newest.setdefault(record.id, record)
    return Origins(promotions=list(newest.values()), arrivals=arrivals)


def _promotion_at(
    history: Sequence[tuple[str, Collection[str]]],
    index: int,
    read: Callable[[str], Promotion | None],
) -> Promotion | None:
    """The promotion the commit at `index` merged (with a pull request noted after), or None."""
    commit, paths = history[index]
    if PROMOTION_FILE not in paths:
        return None  # written straight to the branch
    record = read(commit)
    later = index - 1
    while record is not None and later >= 0 and set(history[later][1]) == {PROMOTION_FILE}:
        noted = read(history[later][0])
        if noted is None or noted.id != record.id:
            break
        record, later = noted, later - 1
    return record


def direct_line(environment: str, arrival: Arrival) -> str:
    """How a CR names an entry that came without a promotion."""
    return f"no promotion: written directly to {environment} in commit {arrival.commit}"


def promotion_fields(promotions: list[Promotion]) -> dict[str, Any]:
    """The CR's promotion fields, from the promotions that brought its delta (newest first).

    One promotion gives its fields as they are. Several give: the highest priority and
    customer impact, a large deployment impact if any is large, every assignee, and every
    description, purpose, impact and backout plan, each prefixed with its promotion's id;
    `promotion_id` names the newest, and every gate override is kept. None gives nothing.
    """
    if not promotions:
        return {}
    newest = promotions[0]
    overrides = [line for p in promotions for line in p.gate_overrides]
    if len(promotions) == 1:
        fields = newest.model_dump(include=_COPIED)
        return {**fields, "promotion_id": newest.id, "gate_overrides": overrides}

    def each(field: str, joiner: str) -> str:
        return joiner.join(f"{p.id}: {text}" for p in promotions if (text := getattr(p, field)))

    return {
        "priority": min((p.priority for p in promotions), key=list(Priority).index),
        "customer_impact": min(
            (p.customer_impact for p in promotions), key=list(CustomerImpact).index
        ),
        "deployment_impact": DeploymentImpact.large
        if any(p.deployment_impact is DeploymentImpact.large for p in promotions)
        else DeploymentImpact.small,
        "assigned_to": ", ".join(dict.fromkeys(p.assigned_to for p in promotions)),
        "description": each("description", "\n\n"),
        "purpose": each("purpose", "; "),
        "impact": each("impact", "; "),
        "backout_plan": each("backout_plan", "\n\n"),
        "promotion_id": newest.id,
        "gate_overrides": overrides,
    }
