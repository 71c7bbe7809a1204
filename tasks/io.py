"""How I/O tasks retry: a few times, after a pause, and only when a retry can help."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE
from pydantic import ValidationError

from changeflow.errors import BadInput, IntegrityError, NotReady, ServiceTimeout

__all__ = ["IO", "transient"]

# answers, not accidents: asking again gives the same answer (NotReady includes StaleChange, a
# record another writer changed); and a service that let a call time out after the adapter's own
# bounded attempts: retrying it again would multiply the wait, not the chances
_FINAL = (BadInput, IntegrityError, NotReady, ServiceTimeout, ValidationError)


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task unless it failed with an answer (bad input, tampering, not ready) or
    after a timeout that already spent the adapter's bounded attempts."""
    try:
        state.result()
    except _FINAL:
        return False
    except Exception:
        return True
    return True


IO: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": 2,
    "retry_delay_seconds": 2,
    "retry_condition_fn": transient,
}
