"""A deploy run that crashes at any step is completed by a rerun, without a second CR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from blocks import config
from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.inventory import GitInventory
from changeflow.models import ChangeState, CloseCategory
from changeflow.requests import DeploymentRequest, RecordStores
from flows.deploy_flow import deploy

PROD_R1 = DeploymentRequest(environment="prod", region="r1")


class Crash(BaseException):
    """The injected failure: like a killed process, not an error a task would retry."""


def _crash_at(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str, when: Callable[..., bool]
) -> Callable[[], None]:
    """Make `owner.name` crash when `when` holds; return what disarms it."""
    original = getattr(owner, name)
    armed = [True]

    def crashing(*args: object, **kwargs: object) -> object:
        if armed[0] and when(*args, **kwargs):
            raise Crash(f"injected crash in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)
    return lambda: armed.__setitem__(0, False)


STEPS = {
    # summary stored, no CR filed yet
    "summary": (EvidenceLocker, "put_summary", lambda *a, **k: True),
    # CR filed, not yet assessed
    "assess": (
        GitChangeManagement,
        "update",
        lambda self, cr, message, **k: message == "approved automatically",
    ),
    # approved, not yet implementing
    "implement": (
        GitChangeManagement,
        "update",
        lambda self, cr, message, **k: message == "implement",
    ),
    # deployed, labels not moved, CR not closed
    "labels": (GitInventory, "move_tag", lambda *a, **k: True),
    # deployed and labelled, CR not closed
    "close": (
        GitChangeManagement,
        "update",
        lambda self, cr, message, **k: message.startswith("closed"),
    ),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_rerun_completes_a_crashed_deploy(
    step: str, deployable: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = deployable()
    owner, name, when = STEPS[step]
    # retries inside the run would hide a single failure: the crash lasts for the whole run
    disarm = _crash_at(monkeypatch, owner, name, when)
    with pytest.raises(Crash):
        deploy(PROD_R1, RecordStores.from_env())
    disarm()

    outcome = deploy(PROD_R1, RecordStores.from_env())

    crs = config.change_management(None).list()
    assert [cr.id for cr in crs] == [outcome.change_request] == ["CHG0000001"]
    assert crs[0].state is ChangeState.closed
    assert crs[0].close_category is CloseCategory.successful
    inventory = config.inventory(None)
    assert inventory.resolve("r1_prod_latest") == inventory.resolve("prod")
    deployed = runs.read_text().split()
    assert set(deployed) == {"CHG0000001"}
    # a third run finds nothing left to do
    again = deploy(PROD_R1, RecordStores.from_env())
    assert again.state == "skipped"
    assert len(config.change_management(None).list()) == 1
