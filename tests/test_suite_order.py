"""The suite's own scheduling list names modules that exist (a renamed one would quietly drop)."""

from __future__ import annotations

from pathlib import Path

from suite_order import LONGEST_FIRST


def test_every_module_the_suite_starts_first_exists() -> None:
    tests = Path(__file__).parent
    assert [m for m in LONGEST_FIRST if not (tests / m).is_file()] == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
