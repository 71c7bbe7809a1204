"""What every flow asks of its own run: its scope and its page in the UI."""

from __future__ import annotations

import uuid

from prefect.runtime import flow_run
from prefect.settings import PREFECT_UI_URL

__all__ = ["run_scope", "run_url"]


def run_scope(kind: str) -> str:
    """The scope of this run's records: `<kind>-<flow run id>` (a fresh id outside a run)."""
    return f"{kind}-{flow_run.get_id() or uuid.uuid4()}"


def run_url() -> str | None:
    """The run's page in the Prefect UI, when a UI is configured."""
    ui, run_id = PREFECT_UI_URL.value(), flow_run.get_id()
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui and run_id else None
