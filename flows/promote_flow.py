"""The promote flow: move artifacts from one environment to the next under a promotion record."""

from __future__ import annotations

import uuid

from prefect import flow, get_run_logger

from blocks import config
from changeflow.models import CustomerImpact, DeploymentImpact, Priority, Promotion, utcnow
from tasks.inventory import promote_entries

__all__ = ["merge_promotion", "promote"]


@flow(name="promote", flow_run_name="promote-{source}-to-{target}")
def promote(
    source: str,
    target: str,
    priority: Priority,
    assigned_to: str,
    description: str,
    backout_plan: str,
    purpose: str = "",
    impact: str = "",
    customer_impact: CustomerImpact = CustomerImpact.no_impact,
    deployment_impact: DeploymentImpact = DeploymentImpact.small,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    emergency: bool = False,
    review: bool = False,
    inventory_block: str | None = config.INVENTORY_BLOCK,
) -> Promotion:
    """Promote what `source` has and `target` lacks; merged at once unless `review` is set.

    The promotion record's fields become the fields of the change requests that deploy it.
    """
    promotion = Promotion(
        id=f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        source=source,
        target=target,
        priority=priority,
        assigned_to=assigned_to,
        description=description,
        purpose=purpose,
        impact=impact,
        customer_impact=customer_impact,
        deployment_impact=deployment_impact,
        backout_plan=backout_plan,
        emergency=emergency,
        include=include or [],
        exclude=exclude or [],
    )
    inventory = config.inventory(inventory_block)
    recorded = promote_entries(inventory, promotion, merge=not review)
    get_run_logger().info(
        "promotion %s: %d entries from %s to %s%s",
        recorded.id,
        len(recorded.entries),
        source,
        target,
        " (open for review)" if review else "",
    )
    return recorded


@flow(name="merge-promotion", flow_run_name="merge-promotion-{promotion_id}")
def merge_promotion(promotion_id: str, inventory_block: str | None = config.INVENTORY_BLOCK) -> str:
    """Merge a promotion that was left open for review."""
    return config.inventory(inventory_block).merge_promotion(promotion_id)
