"""Two Prefect Automations for release managers, built on changeflow's events.

    python docs/automations.py --notify slack-webhook/release-managers [--approval-after 300]

`--notify` names a saved notification block as `<block type slug>/<name>` (Slack, Microsoft
Teams, email, PagerDuty, a custom webhook...). The automations are created, or replaced when
they exist (matched by name):

- **changeflow: CR waiting for approval** fires when a change request was created
  (`changeflow.change_request.created`) and neither `changeflow.change_request.approved` nor
  `...rejected` followed for the same CR within `--approval-after` seconds. An auto-approved CR
  is approved within the second, so only CRs that wait for a person notify.
- **changeflow: evidence failed** fires on every `changeflow.evidence.failed` event.
- **changeflow: emergency awaits review** fires on every
  `changeflow.change_request.emergency_review`: an emergency change was deployed ahead of its
  approvals, and its CR cannot close successful until they meet the quorum.
"""

from __future__ import annotations

import argparse
import contextlib
from datetime import timedelta

from prefect.automations import Automation
from prefect.blocks.core import Block
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

APPROVAL = "changeflow: CR waiting for approval"
EVIDENCE = "changeflow: evidence failed"
EMERGENCY = "changeflow: emergency awaits review"


def approval_waiting(block_document_id: str, after_s: int = 300) -> Automation:
    return Automation(
        name=APPROVAL,
        description="A change request has waited for a person's decision.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "changeflow.change_request.*"},
            after={"changeflow.change_request.created"},
            expect={"changeflow.change_request.approved", "changeflow.change_request.rejected"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_s),
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject="{{ event.resource.id.split('.')[-1] }} waits for approval",
                body=(
                    "Change request {{ event.resource.id.split('.')[-1] }} was filed "
                    "{{ event.occurred }} and nobody has decided yet.\n"
                    "Approve it in the Prefect UI (the paused deploy run) or with\n"
                    "  changeflow cr approve {{ event.resource.id.split('.')[-1] }} --by NAME"
                ),
            )
        ],
    )


def evidence_failed(block_document_id: str) -> Automation:
    return Automation(
        name=EVIDENCE,
        description="A check left failure evidence: its artifacts cannot be auto-approved.",
        trigger=EventTrigger(
            expect={"changeflow.evidence.failed"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject="changeflow: failing evidence {{ event.resource.id }}",
                body=(
                    "{{ event.event }} at {{ event.occurred }}\n"
                    "resource: {{ event.resource.id }}\n"
                    "details: {{ event.payload }}\n"
                    "A change request deploying these artifacts needs a person's approval."
                ),
            )
        ],
    )


def emergency_review(block_document_id: str) -> Automation:
    """Tell release managers an emergency change was deployed and awaits their approvals."""
    return Automation(
        name=EMERGENCY,
        description="An emergency change was deployed and waits for its retroactive approvals.",
        trigger=EventTrigger(
            expect={"changeflow.change_request.emergency_review"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject="{{ event.resource.id.split('.')[-1] }}: emergency awaits review",
                body=(
                    "Emergency change {{ event.resource.id.split('.')[-1] }} was deployed "
                    "{{ event.occurred }} ahead of its approvals "
                    "({{ event.payload.needed }} still needed).\n"
                    "Review it and approve or reject with\n"
                    "  changeflow cr approve {{ event.resource.id.split('.')[-1] }} "
                    "--by IDENTITY --key PATH"
                ),
            )
        ],
    )


def install(notify: str, approval_after_s: int = 300) -> list[Automation]:
    """Create (or replace) the automations; returns them as created."""
    block_id = str(Block.load(notify)._block_document_id)
    created = []
    automations = (
        approval_waiting(block_id, approval_after_s),
        evidence_failed(block_id),
        emergency_review(block_id),
    )
    for automation in automations:
        with contextlib.suppress(ValueError):  # ValueError: not there yet
            Automation.read(name=automation.name).delete()
        created.append(automation.create())
    return created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--notify", required=True, help="a saved notification block: TYPE-SLUG/NAME"
    )
    parser.add_argument(
        "--approval-after", type=int, default=300, help="seconds to wait (at least 10)"
    )
    args = parser.parse_args()
    for automation in install(args.notify, args.approval_after):
        print(f"created automation {automation.name!r} ({automation.id})")


if __name__ == "__main__":
    main()
