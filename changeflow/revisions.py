"""A CR's revision: the digest of its content, and the compare-and-swap rule on writing it.

A caller that decides on a CR (a person approving it, the deploy flow moving it on) names the
revision it read; every change-management backend refuses the write when the stored CR is no
longer that revision, so of two decisions taken at once exactly one is recorded.
"""

from __future__ import annotations

from changeflow.canonical import digest
from changeflow.errors import StaleChange
from changeflow.models import ChangeRequest

__all__ = ["check_revision", "revision"]


def revision(cr: ChangeRequest) -> str:
    """The CR's revision: the sha256 of its canonical JSON (`sha256:<hex>`)."""
    return digest(cr.to_json())


def check_revision(stored: ChangeRequest, new: ChangeRequest, expected: str | None) -> bool:
    """Whether `new` is to be written over `stored`, the caller having read revision `expected`.

    Writing what is already stored needs nothing (a retried write lands once); with no
    `expected` the write goes ahead as before.

    Raises:
        StaleChange: when the stored CR is no longer the revision the caller read.
    """
    if stored == new:
        return False
    if expected is not None and revision(stored) != expected:
        decided = stored.decision
        now = f"it is {stored.state.value}" + (
            f", {decided.decision} by {decided.by}" if decided else ""
        )
        raise StaleChange(
            f"{stored.id} changed since it was read ({now}): nothing written; look again"
        )
    return True
