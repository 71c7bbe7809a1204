"""The order in which the suite's modules start.

The modules that take longest start first. Four workers share two cores, and xdist's loadfile
hands out modules by their number of tests, so the few long ones (one lifecycle, one UI, one
scale-out test) came last and ran alone while the other cores idled. Measured walls on four
workers, longest first (`pytest --durations=0`, summed by module); any other module follows in
collection order. `--no-loadscope-reorder` in pyproject keeps this order.
"""

from __future__ import annotations

import pytest

__all__ = ["LONGEST_FIRST", "longest_first"]

LONGEST_FIRST = [
    "flows/test_lifecycle.py",  # ~95 s
    "flows/test_deployments.py",
    "flows/test_signed_evidence.py",
    "e2e/test_ui.py",
    "cli/test_hostile_input.py",
    "flows/test_recovery.py",
    "blocks/test_block_standards.py",
    "flows/test_flow_logic.py",
    "e2e/test_prefect_auth.py",
    "blocks/test_git_store.py",
    "cli/test_secrets.py",
    "e2e/test_scale_out.py",
    "blocks/test_inventory.py",
    "flows/test_task_runs.py",
    "flows/test_deploy_policy.py",
    "flows/test_promotion_gate.py",
    "blocks/test_locker_outage.py",
    "e2e/test_automations.py",
    "blocks/test_change_management.py",
    "contract/test_ports.py",  # ~20 s
]


def longest_first(items: list[pytest.Item]) -> None:
    """Order modules longest first (a stable sort: each module's tests keep their order)."""
    rank = {f"tests/{m}": i for i, m in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
