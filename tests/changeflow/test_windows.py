"""Change windows: loading from the environments file, weekly openings across DST, freezes,
emergencies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from changeflow.errors import BadInput
from changeflow.project import load_environments, parse_environments
from changeflow.windows import EnvironmentWindows, WindowDecision, decide_window, outside_windows

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

CALENDAR = """
[environments.prod]
regions = ["r1"]
[environments.prod.change_windows]
timezone = "Europe/Berlin"
outside_window = "wait"

[[environments.prod.change_windows.windows]]
days = ["tue", "thu"]
start = "22:00"
end = "02:00"

[[environments.prod.change_windows.freezes]]
start = 2026-12-20T00:00:00+01:00
end = 2027-01-04T00:00:00+01:00
reason = "year-end freeze"

[environments.staging]
regions = ["r1"]
[environments.staging.change_windows]
timezone = "America/New_York"
outside_window = "refuse"

[[environments.staging.change_windows.windows]]
days = ["mon", "tue", "wed", "thu", "fri"]
start = 09:00:00
end = 17:00:00

[environments.qa]
regions = ["r1"]
[environments.qa.change_windows]
timezone = "UTC"

[[environments.qa.change_windows.freezes]]
start = 2026-06-01T00:00:00
end = 2026-06-02T00:00:00
reason = "qa migration"

[environments.dev]
regions = ["r1"]
"""

Windows = dict[str, EnvironmentWindows | None]


def windows_of(text: str) -> Windows:
    """Each environment's change windows, as the environments file gives them."""
    return {
        name: spec.change_windows for name, spec in parse_environments(text).environments.items()
    }


@pytest.fixture
def calendar() -> Windows:
    return windows_of(CALENDAR)


def decide(calendar: Windows, environment: str, now: datetime, emergency: bool) -> WindowDecision:
    return decide_window(calendar.get(environment), environment, now, emergency)


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def test_inside_a_window_is_allowed(calendar: Windows) -> None:
    # Tuesday 2026-11-24 23:00 Berlin, inside tue 22:00-02:00
    decision = decide(calendar, "prod", at(BERLIN, 2026, 11, 24, 23, 0), emergency=False)
    assert decision.allowed and not decision.exempt and decision.wait_until is None
    assert decision.action == "proceed"
    # past midnight: Wednesday 01:30 still belongs to Tuesday's window
    assert decide(calendar, "prod", at(BERLIN, 2026, 11, 25, 1, 30), False).allowed
    # the end is exclusive
    assert not decide(calendar, "prod", at(BERLIN, 2026, 11, 25, 2, 0), False).allowed


def test_outside_a_window_waits_for_the_next_opening(calendar: Windows) -> None:
    decision = decide(calendar, "prod", at(BERLIN, 2026, 11, 25, 12, 0), emergency=False)
    assert not decision.allowed and decision.action == "wait"
    assert decision.wait_until == at(BERLIN, 2026, 11, 26, 22, 0).astimezone(UTC)
    assert decision.wait_until is not None and decision.wait_until.tzinfo is UTC
    assert "outside the change windows of prod" in decision.reason
    assert "2026-11-26T22:00:00+01:00" in decision.reason


def test_refuse_outside_a_window_names_the_next_opening(calendar: Windows) -> None:
    decision = decide(calendar, "staging", at(NEW_YORK, 2026, 11, 28, 10, 0), False)
    assert decision.action == "refuse" and decision.wait_until is None
    assert "refused" in decision.reason and "2026-11-30T09:00:00-05:00" in decision.reason


def test_no_window_configured_is_always_allowed(calendar: Windows) -> None:
    for moment in (at(UTC, 2026, 1, 1, 3, 0), at(UTC, 2026, 7, 4, 12, 0)):
        decision = decide(calendar, "dev", moment, emergency=False)
        assert decision.allowed and "no change window configured for dev" in decision.reason
        assert decide_window(None, "prod", moment, emergency=False).allowed
    # an environment with freezes only is open outside them
    assert decide(calendar, "qa", at(UTC, 2026, 5, 31, 12, 0), False).allowed


def test_freeze_overlapping_a_window_blocks_it(calendar: Windows) -> None:
    # Tuesday 2026-12-22 23:00 is inside a window but inside the year-end freeze
    decision = decide(calendar, "prod", at(BERLIN, 2026, 12, 22, 23, 0), emergency=False)
    assert not decision.allowed
    assert "frozen until 2027-01-04T00:00:00+01:00 (year-end freeze)" in decision.reason
    # the next opening is the first window after the freeze: Tuesday 2027-01-05 22:00
    assert decision.wait_until == at(BERLIN, 2027, 1, 5, 22, 0).astimezone(UTC)


def test_freeze_ending_inside_a_window_opens_at_its_end() -> None:
    calendar = windows_of(
        """
        [environments.prod]
        regions = ["r1"]
        [environments.prod.change_windows]
        timezone = "UTC"
        [[environments.prod.change_windows.windows]]
        days = ["mon"]
        start = "08:00"
        end = "18:00"
        [[environments.prod.change_windows.freezes]]
        start = 2026-11-30T07:00:00Z
        end = 2026-11-30T12:00:00Z
        reason = "db upgrade"
        """
    )
    decision = decide(calendar, "prod", at(UTC, 2026, 11, 30, 9, 0), emergency=False)
    assert decision.wait_until == at(UTC, 2026, 11, 30, 12, 0)
    assert decide(calendar, "prod", at(UTC, 2026, 11, 30, 12, 0), False).allowed


def test_freeze_without_offset_is_in_the_environment_zone(calendar: Windows) -> None:
    decision = decide(calendar, "qa", at(UTC, 2026, 6, 1, 12, 0), emergency=False)
    assert decision.wait_until == at(UTC, 2026, 6, 2, 0, 0)
    tokyo = windows_of(CALENDAR.replace('timezone = "UTC"', 'timezone = "Asia/Tokyo"'))
    qa = tokyo["qa"]
    assert qa is not None
    freeze = qa.freezes[0]
    assert freeze.start == at(ZoneInfo("Asia/Tokyo"), 2026, 6, 1, 0, 0)


def test_emergency_is_exempt_and_says_so(calendar: Windows) -> None:
    frozen = decide(calendar, "prod", at(BERLIN, 2026, 12, 24, 12, 0), emergency=True)
    assert frozen.allowed and frozen.exempt and frozen.wait_until is None
    assert frozen.reason.startswith("emergency: exempt from change windows")
    assert "year-end freeze" in frozen.reason
    # an emergency inside a window needs no exemption
    inside = decide(calendar, "prod", at(BERLIN, 2026, 11, 24, 23, 0), emergency=True)
    assert inside.allowed and not inside.exempt


def test_windows_keep_wall_clock_hours_across_dst() -> None:
    calendar = windows_of(
        """
        [environments.prod]
        regions = ["r1"]
        [environments.prod.change_windows]
        timezone = "America/New_York"
        [[environments.prod.change_windows.windows]]
        days = ["sun"]
        start = "01:00"
        end = "04:00"
        """
    )
    # 2026-03-08: clocks jump 02:00 EST -> 03:00 EDT; the window is 01:00 EST to 04:00 EDT
    spring_open = at(NEW_YORK, 2026, 3, 8, 1, 0).astimezone(UTC)
    spring_close = at(NEW_YORK, 2026, 3, 8, 4, 0).astimezone(UTC)
    assert spring_close - spring_open == timedelta(hours=2)
    assert decide(calendar, "prod", spring_close - timedelta(minutes=1), False).allowed
    assert not decide(calendar, "prod", spring_close, False).allowed
    before = decide(calendar, "prod", spring_open - timedelta(minutes=1), False)
    assert before.wait_until == spring_open == datetime(2026, 3, 8, 6, 0, tzinfo=UTC)
    # 2026-11-01: clocks fall back 02:00 EDT -> 01:00 EST; the window lasts four hours
    fall_open = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 01:00 EDT
    fall_close = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # 04:00 EST
    assert decide(calendar, "prod", fall_open, False).allowed
    assert decide(calendar, "prod", fall_close - timedelta(minutes=1), False).allowed
    assert not decide(calendar, "prod", fall_close, False).allowed
    # a week on, the opening follows local time again: 01:00 EST = 06:00 UTC
    after = decide(calendar, "prod", fall_close, False)
    assert after.wait_until == datetime(2026, 11, 8, 6, 0, tzinfo=UTC)


def test_window_in_the_spring_gap_still_opens() -> None:
    calendar = windows_of(
        """
        [environments.prod]
        regions = ["r1"]
        [environments.prod.change_windows]
        timezone = "Europe/Berlin"
        [[environments.prod.change_windows.windows]]
        days = ["sun"]
        start = "02:30"
        end = "05:00"
        """
    )
    # 2026-03-29 02:30 does not exist in Berlin; the window opens when the clocks jump
    decision = decide(calendar, "prod", datetime(2026, 3, 28, 12, 0, tzinfo=UTC), False)
    assert decision.wait_until is not None
    assert decision.wait_until.astimezone(BERLIN).date().isoformat() == "2026-03-29"
    assert decide(calendar, "prod", datetime(2026, 3, 29, 2, 0, tzinfo=UTC), False).allowed


def test_no_opening_in_sight_refuses() -> None:
    calendar = windows_of(
        """
        [environments.prod]
        regions = ["r1"]
        [environments.prod.change_windows]
        [[environments.prod.change_windows.windows]]
        days = ["mon"]
        start = "08:00"
        end = "09:00"
        [[environments.prod.change_windows.freezes]]
        start = 2026-01-01T00:00:00Z
        end = 2036-01-01T00:00:00Z
        reason = "forever"
        """
    )
    decision = decide(calendar, "prod", at(UTC, 2026, 2, 2, 12, 0), False)
    assert decision.action == "refuse" and "no opening in sight" in decision.reason


def test_naive_now_is_bad_input(calendar: Windows) -> None:
    with pytest.raises(BadInput, match="time zone"):
        decide(calendar, "prod", datetime(2026, 1, 1, 12, 0), emergency=False)


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        (
            'timezone = "Mars/Olympus"',
            "environments.prod.change_windows.timezone: unknown time zone",
        ),
        ('outside_window = "later"', "environments.prod.change_windows.outside_window"),
        ('colour = "blue"', "environments.prod.change_windows.colour"),
        (
            "[[environments.prod.change_windows.windows]]\n"
            'days = ["tue"]\nstart = "25:00"\nend = "02:00"',
            "environments.prod.change_windows.windows.0.start",
        ),
        (
            "[[environments.prod.change_windows.windows]]\n"
            'days = ["someday"]\nstart = "01:00"\nend = "02:00"',
            "environments.prod.change_windows.windows.0.days.0",
        ),
        (
            "[[environments.prod.change_windows.windows]]\n"
            'days = []\nstart = "01:00"\nend = "02:00"',
            "environments.prod.change_windows.windows.0.days",
        ),
        (
            "[[environments.prod.change_windows.windows]]\n"
            'days = ["mon"]\nstart = "01:00"\nend = "01:00"',
            "environments.prod.change_windows.windows.0: start and end are equal",
        ),
        (
            "[[environments.prod.change_windows.freezes]]\nstart = 2026-01-02T00:00:00Z\n"
            'end = 2026-01-01T00:00:00Z\nreason = "x"',
            "environments.prod.change_windows.freezes",
        ),
        (
            "[[environments.prod.change_windows.freezes]]\nstart = 2026-01-01T00:00:00Z\n"
            "end = 2026-01-02T00:00:00Z",
            "environments.prod.change_windows.freezes.0.reason",
        ),
    ],
)
def test_malformed_windows_name_the_field(fragment: str, field: str) -> None:
    text = (
        f'[environments.prod]\nregions = ["r1"]\n[environments.prod.change_windows]\n{fragment}\n'
    )
    with pytest.raises(BadInput) as caught:
        parse_environments(text, "environments.toml")
    message = str(caught.value)
    assert message.startswith("environments.toml: ") and "\n" not in message
    assert field in message, message


def test_windows_load_with_their_environments_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no environments file"):
        load_environments(tmp_path / "missing.toml")
    path = tmp_path / "environments.toml"
    path.write_text("[environments.prod\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_environments(path)
    path.write_text(CALENDAR)
    loaded = load_environments(path).environments
    assert sorted(n for n, spec in loaded.items() if spec.change_windows) == [
        "prod",
        "qa",
        "staging",
    ]


def test_outside_windows_names_the_moments_no_window_holds() -> None:
    prod = windows_of(CALENDAR)["prod"]
    assert prod is not None
    inside = datetime(2026, 11, 24, 23, 0, tzinfo=BERLIN)  # Tuesday 23:00
    past_midnight = datetime(2026, 11, 27, 1, 30, tzinfo=BERLIN)  # Thursday's window, Friday
    outside = datetime(2026, 11, 25, 23, 0, tzinfo=BERLIN)  # Wednesday
    # a freeze is the deploy flow's business, not the schedule's
    frozen = datetime(2026, 12, 22, 23, 0, tzinfo=BERLIN)
    assert outside_windows(prod, [inside, past_midnight, outside, frozen]) == [outside]
    always_open = prod.model_copy(update={"windows": []})
    assert outside_windows(always_open, [outside]) == []
