"""The trace of a deployment's delta, published on its run as a Prefect artifact."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from changeflow.errors import BadInput, IntegrityError, StorageUnavailable
from changeflow.models import ChangeRequest
from changeflow.ports import Stores
from changeflow.trace import trace_markdown
from flows.ui import artifact_key
from flows.ui_publishing import publish
from tasks.history import read_deployment_trace

__all__ = ["publish_trace"]


def publish_trace(stores: Stores, cr: ChangeRequest) -> None:
    """Publish what happened to each artifact of `cr`'s bill of materials (`changeflow trace
    CHG…`): its builds and their evidence, every deployment of it, its incidents.

    It only informs: a record it cannot read is logged, and the deployment's outcome stands.
    """
    try:
        trace = read_deployment_trace(stores, cr.id, date.today())
    except (BadInput, IntegrityError, StorageUnavailable) as exc:
        get_run_logger().warning("no trace of %s published: %s", cr.id, exc)
        return
    publish(
        create_markdown_artifact,
        key=artifact_key("trace", cr.environment, cr.region),
        markdown=trace_markdown(trace, f"Trace of {cr.id}: {cr.environment}/{cr.region}"),
        description=f"what happened to each artifact of {cr.id}",
    )
