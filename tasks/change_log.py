"""The change log step: each application's commits between what is deployed and what comes."""

from __future__ import annotations

from collections.abc import Mapping

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.app_history import read_commit_logs
from changeflow.change_content import ChangeLogEntry
from changeflow.change_log import (
    MAX_COMMITS,
    Forge,
    change_log,
    not_readable_here,
    planned_change_log,
)
from changeflow.delta import Delta
from changeflow.models import InventoryEntry
from changeflow.ports import Inventory

__all__ = ["forge_of", "read_change_log"]


def forge_of(inventory: Inventory) -> Forge | None:
    """The forge the inventory opens pull requests on (the git block's `pull_requests`), whose
    form the change log's pull request links take; None for none."""
    provider = getattr(inventory, "pull_requests", None)  # only the git inventory has one
    kind = getattr(provider, "kind", None)
    return kind if kind in ("github", "gitlab") else None


# no retries: a repository that cannot be read is said in the CR, not waited for again
@task(name="read-change-log", cache_policy=NO_CACHE)
def read_change_log(
    delta: Delta,
    previous: Mapping[str, InventoryEntry],
    forge: Forge | None,
    hosts: list[str] | None = None,
) -> list[ChangeLogEntry]:
    """The CR's change log: the delta's application commits, or why each could not be read.

    Only repositories the environment's `change_log_hosts` allows (`hosts`) are cloned.
    """
    planned = planned_change_log(delta, previous)
    # the entry's own URL (the change log keeps it with any credentials hidden)
    urls = {e.entry: delta.entries[e.entry].repository_url for e in planned}
    refused = {name: why for name, url in urls.items()
               if (why := not_readable_here(url, hosts)) is not None}  # fmt: skip
    ranges = [(e.entry, urls[e.entry], e.from_commit, e.to_commit)
              for e in planned if e.entry not in refused]  # fmt: skip
    read = read_commit_logs(ranges, MAX_COMMITS) if ranges else {}
    return change_log(planned, {**read, **refused}, forge)
