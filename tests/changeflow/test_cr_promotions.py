"""The CR's promotion fields come from the promotions that brought its delta (issue 14), and an
entry written straight to the environment branch is named as such."""

from __future__ import annotations

import json

from changeflow.canonical import canonical_json
from changeflow.change import draft_change_request
from changeflow.change_content import Arrival, PullRequestLink
from changeflow.delta import Delta
from changeflow.delta_origins import (
    PROMOTION_FILE,
    Origins,
    direct_line,
    promotion_fields,
    trace_origins,
)
from changeflow.models import ChangeRequest, ChangeType, Priority, Promotion
from changeflow.readiness import Readiness
from changeflow.render import render_change_request
from changeflow.summary import EvidenceSummary


def _promotion(pid: str, **fields: object) -> Promotion:
    return Promotion.model_validate(
        {"id": pid, "source": "staging", "target": "prod", "assigned_to": f"{pid}-owner",
         "description": f"why {pid}", "backout_plan": f"undo {pid}", **fields}
    )  # fmt: skip


def _sha(n: int) -> str:
    return f"{n:040x}"


def test_each_entry_is_traced_to_the_commit_that_last_changed_it() -> None:
    records = {
        _sha(5): _promotion("p2"),
        _sha(4): _promotion("p2", pull_request=PullRequestLink(number=9, url="https://f/9")),
        _sha(3): _promotion("other"),  # a later promotion of entries outside the delta
        _sha(1): _promotion("p1"),
    }
    read_at: list[str] = []

    def read(commit: str) -> Promotion | None:
        read_at.append(commit)
        return records.get(commit)

    history = [  # newest first
        (_sha(6), {"c"}),  # written straight to the branch
        (_sha(3), {PROMOTION_FILE}),  # promotion "other": none of these entries
        (_sha(4), {PROMOTION_FILE}),  # p2's pull request, noted on its branch after it
        (_sha(5), {"a", "d", PROMOTION_FILE}),  # p2
        (_sha(2), {"a"}),
        (_sha(1), {"b", "a", PROMOTION_FILE}),  # p1
    ]

    origins = trace_origins(history, ["a", "b", "c", "d", "e"], read)

    assert origins.arrivals == [
        Arrival(entry="a", commit=_sha(5), promotion="p2"),
        Arrival(entry="b", commit=_sha(1), promotion="p1"),
        Arrival(entry="c", commit=_sha(6), promotion=None),
        Arrival(entry="d", commit=_sha(5), promotion="p2"),
    ]  # "e" changed in no commit of the range: no arrival
    assert [p.id for p in origins.promotions] == ["p2", "p1"]
    assert origins.promotions[0].pull_request == PullRequestLink(number=9, url="https://f/9")
    assert _sha(6) not in read_at and _sha(2) not in read_at  # only the arrivals' records
    assert not origins.emergency
    assert direct_line("prod", origins.arrivals[2]) == (
        f"no promotion: written directly to prod in commit {_sha(6)}"
    )


def test_several_promotions_give_the_highest_priority_and_every_backout_plan() -> None:
    newer = _promotion("p2", priority="low", impact="api", gate_overrides=["x: refused"])
    older = _promotion(
        "p1", priority="high", customer_impact="moderate", deployment_impact="large",
        purpose="fix", emergency=True,
    )  # fmt: skip
    fields = promotion_fields([newer, older])
    assert fields["priority"] is Priority.high
    assert fields["customer_impact"].value == "moderate"
    assert fields["deployment_impact"].value == "large"
    assert fields["assigned_to"] == "p2-owner, p1-owner"
    assert fields["backout_plan"] == "p2: undo p2\n\np1: undo p1"
    assert fields["description"] == "p2: why p2\n\np1: why p1"
    assert (fields["purpose"], fields["impact"]) == ("p1: fix", "p2: api")
    assert fields["promotion_id"] == "p2" and fields["gate_overrides"] == ["x: refused"]
    one = promotion_fields([older])
    assert (one["priority"], one["backout_plan"], one["purpose"]) == (
        Priority.high,
        "undo p1",
        "fix",
    )
    assert promotion_fields([]) == {}


def _filed(origins: Origins | None, promotion: Promotion | None = None) -> ChangeRequest:
    return draft_change_request(
        "CHG0000007", environment="prod", region="r1", deployment_run_id="deploy-1",
        delta=Delta(changed=["a"], added=["c"], deleted=["gone"]), previous={},
        inventory_commit="c" * 40, previous_inventory_commit=None, promotion=promotion,
        summary=EvidenceSummary(scope="deploy-1", environment="prod", region="r1"),
        summary_url="s3://b/s.json", summary_sha256="sha256:" + "0" * 64,
        readiness=Readiness(ready=True), emergency=False, origins=origins,
    )  # fmt: skip


def test_the_cr_lists_each_promotion_with_its_entries_and_the_direct_writes() -> None:
    link = PullRequestLink(number=12, url="https://github.com/acme/inventory/pull/12")
    p2 = _promotion("p2", priority="critical", emergency=True, pull_request=link)
    p1 = _promotion("p1", priority="low", description="# heading\n<b>x</b>")
    origins = Origins(
        promotions=[p2, p1],
        arrivals=[
            Arrival(entry="a", commit=_sha(3), promotion="p2"),
            Arrival(entry="c", commit=_sha(2), promotion=None),
            Arrival(entry="gone", commit=_sha(1), promotion="p1"),
        ],
    )

    cr = _filed(origins)

    assert cr.promotions == [p2, p1] and cr.arrivals == origins.arrivals
    assert (cr.priority, cr.promotion_id, cr.type) == (
        Priority.critical, "p2", ChangeType.emergency,
    )  # fmt: skip
    assert cr.backout_plan == "p2: undo p2\n\np1: undo p1"
    text = render_change_request(cr)
    assert (
        "- promotion `p2` from staging, pull request "
        "[#12](https://github.com/acme/inventory/pull/12): priority critical, assigned to "
        "p2-owner (emergency); brought `a`"
    ) in text
    p1_line = "- promotion `p1` from staging: priority low, assigned to p1-owner; brought"
    assert f"{p1_line} `gone` (deleted)" in text
    assert f"- `c`: no promotion: written directly to prod in commit `{_sha(2)}`" in text
    # what people typed stays their text: no heading, no HTML of its own
    assert "p1: # heading\n\\<b\\>x\\</b\\>" in text and "<b>" not in text


def test_a_cr_drafted_without_origins_takes_the_promotion_given() -> None:
    given = _promotion("p9", priority="high")
    cr = _filed(None, given)
    assert (cr.promotion_id, cr.priority, cr.promotions, cr.arrivals) == (
        "p9", Priority.high, [given], [],
    )  # fmt: skip
    bare = _filed(None)
    assert (bare.promotion_id, bare.promotions, bare.assigned_to) == (None, [], "")
    assert "(none: nothing in the delta came through" in render_change_request(bare)
    # a CR filed before these fields reads back as the same JSON: its digest does not change
    older = json.loads(bare.to_json())
    del older["promotions"], older["arrivals"]
    older["change_log"] = [{"entry": "c", "repository_url": "https://example.com/app",
                            "from_commit": "a" * 40, "to_commit": "c" * 40}]  # fmt: skip
    older_json = canonical_json(older)
    assert ChangeRequest.model_validate_json(older_json).to_json() == older_json
