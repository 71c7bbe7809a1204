"""The promote flow: move artifacts from one environment to the next under a promotion record."""

import uuid

from prefect import flow, get_run_logger

import blocks.stores
from changeflow.gate import UNGATED_SOURCE
from changeflow.models import Promotion, utcnow
from changeflow.requests import DEFAULT_STORES, PromotionRequest, RecordStores
from flows.gating import check_gate
from tasks.inventory import promote_entries

__all__ = ["merge_promotion", "promote"]


@flow(name="promote", flow_run_name="promote-{request.source}-to-{request.target}")
def promote(request: PromotionRequest, stores: RecordStores = DEFAULT_STORES) -> Promotion:
    """Promote what `source` has and `target` lacks; merged at once unless `review` is set.

    The promotion record's fields become the fields of the change requests that deploy it.
    From an environment (not `master`), only entries deployed and tested there are promoted
    (`changeflow.gate`); an emergency overrides the gate and the promotion records why it had to.

    Args:
        request: what to promote where, and the change's priority, owner, impact and backout.
        stores: the saved blocks that hold the records.
    """
    promotion = Promotion(
        id=f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        **request.model_dump(exclude={"review"}),
    )
    if request.source == UNGATED_SOURCE:
        inventory = blocks.stores.inventory(stores.inventory)
    else:
        # the gate reads the source's CRs and acceptance evidence: every store is needed
        opened = blocks.stores.open_stores(stores)
        inventory = opened.inventory
        overrides = check_gate(opened, request)
        promotion = promotion.model_copy(update={"gate_overrides": overrides})
    recorded = promote_entries(inventory, promotion, merge=not request.review)
    get_run_logger().info(
        "promotion %s: %d entries from %s to %s%s",
        recorded.id,
        len(recorded.entries),
        request.source,
        request.target,
        " (open for review)" if request.review else "",
    )
    return recorded


@flow(name="merge-promotion", flow_run_name="merge-promotion-{promotion_id}")
def merge_promotion(promotion_id: str, stores: RecordStores = DEFAULT_STORES) -> str:
    """Merge a promotion that was left open for review.

    Args:
        promotion_id: the promotion's id.
        stores: the saved blocks that hold the records.
    """
    return blocks.stores.inventory(stores.inventory).merge_promotion(promotion_id)
