"""Which CRs deployed an artifact: the rule every backend's index by artifact digest follows.

A backend keeps an index from each sha256 a CR's bill of materials names to the CR, so the
readers that ask where an artifact went (the gate, the earlier deployments of a delta,
`changeflow trace`, the audit) read those CRs only, not every CR ever filed. The index only
narrows: anyone who can write to the backend can add an entry, so a CR it names counts only
when its own record lists the digest (`deployed_any`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from changeflow.canonical import is_digest
from changeflow.errors import BadInput
from changeflow.models import ChangeRequest

__all__ = ["bom_digests", "check_digests", "deployed_any", "select_deployments"]


def check_digests(sha256s: Collection[str]) -> list[str]:
    """The distinct digests asked about, sorted.

    Raises:
        BadInput: for one that is not `sha256:<64 lowercase hex>` (or a bare string, which
            would be read as its characters).
    """
    if isinstance(sha256s, str):
        raise BadInput(f"give a collection of digests, not one string: {sha256s[:80]!r}")
    bad = [s for s in sha256s if not isinstance(s, str) or not is_digest(s)]
    if bad:
        raise BadInput(f"not a sha256 digest (want sha256:<64 lowercase hex>): {bad[0]!r:.80}")
    return sorted(set(sha256s))


def bom_digests(cr: ChangeRequest) -> list[str]:
    """The digests a CR is indexed under: each well-formed sha256 of its bill of materials."""
    return sorted({sha for sha in cr.bom.values() if is_digest(sha)})


def deployed_any(cr: ChangeRequest, digests: Collection[str]) -> bool:
    """Whether the CR's own record lists one of `digests` (what an index entry cannot fake)."""
    return any(sha in digests for sha in cr.bom.values())


def select_deployments(
    crs: Iterable[ChangeRequest], digests: Collection[str]
) -> list[ChangeRequest]:
    """The CRs an index named that really list one of `digests`, once each, in id order."""
    wanted = set(digests)
    found = {cr.id: cr for cr in crs if deployed_any(cr, wanted)}
    return [found[i] for i in sorted(found)]
