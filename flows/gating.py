"""The promote flow's gate: read what the source environment deployed, let the domain judge."""

from __future__ import annotations

from changeflow.change import deployed_regions
from changeflow.errors import NotReady
from changeflow.gate import GateDecision, deployments_of, gate_promotion
from changeflow.ports import Stores
from changeflow.requests import PromotionRequest, project_environments
from changeflow.tested import TestDeployment
from tasks.history import deployment_history
from tasks.inventory import read_entries, read_labels, read_promotable

__all__ = ["PromotionRefused", "check_gate", "earlier_deployments"]


class PromotionRefused(NotReady):
    """The gate refused entries of a promotion: the message has one line per entry (exit 1)."""


def _judge(stores: Stores, request: PromotionRequest) -> GateDecision:
    inventory = stores.inventory
    names = read_promotable(
        inventory, request.source, request.target, request.include, request.exclude
    )
    at_source = read_entries(inventory, request.source)
    candidates = {name: at_source[name] for name in names if name in at_source}
    bom = {name: entry.sha256 for name, entry in candidates.items()}
    crs, results = deployment_history(stores.changes, stores.evidence, bom)
    places = project_environments().environments
    target, source = places.get(request.target), places.get(request.source)
    # a source the environments file does not name: the regions its labels say it deployed to
    regions = (
        list(source.regions)
        if source is not None
        else sorted(deployed_regions(read_labels(inventory), request.source))
    )
    return gate_promotion(
        candidates,
        source=request.source,
        regions=regions,
        mode=target.promotion_gate if target is not None else "every_region",
        crs=crs,
        results=results,
    )


def check_gate(stores: Stores, request: PromotionRequest) -> list[str]:
    """The gate's refusals an emergency promotion carries (none when every entry passes).

    Raises:
        PromotionRefused: when the gate refuses an entry and the promotion is no emergency;
            nothing is written before.
    """
    decision = _judge(stores, request)
    lines = decision.lines()
    if lines and not request.emergency:
        raise PromotionRefused(
            f"promotion {request.source} -> {request.target} refused for {len(lines)} "
            f"{'entry' if len(lines) == 1 else 'entries'} (promote only tested ones with "
            "--include, or override with --emergency):\n" + "\n".join(lines)
        )
    return lines


def earlier_deployments(
    stores: Stores, bom: dict[str, str], environment: str
) -> list[TestDeployment]:
    """Where each artifact of a delta (name -> sha256) was deployed outside `environment`."""
    if not bom:
        return []
    crs, results = deployment_history(stores.changes, stores.evidence, bom)
    return deployments_of(crs, bom, results, exclude_environment=environment)
