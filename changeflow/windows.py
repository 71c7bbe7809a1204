"""Change windows: when each environment may be deployed to, and the freezes that override them.

An environment's windows are part of its entry in the `environments.toml` the deploy flow reads:

```toml
[environments.prod.change_windows]
timezone = "Europe/Berlin"      # IANA name; the windows' times are wall-clock times there
outside_window = "wait"         # wait | refuse

[[environments.prod.change_windows.windows]]
days = ["tue", "thu"]
start = "22:00"
end = "02:00"                   # an end at or before the start runs past midnight

[[environments.prod.change_windows.freezes]]
start = 2026-12-20T00:00:00+01:00
end = 2027-01-04T00:00:00+01:00
reason = "year-end freeze"
```

An environment without windows may deploy at any time (outside its freezes). Emergencies are
exempt from windows and freezes alike, and the decision says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from changeflow.errors import BadInput

__all__ = [
    "Day",
    "EnvironmentWindows",
    "Freeze",
    "WeeklyWindow",
    "WindowDecision",
    "decide_window",
    "outside_windows",
]

# How far ahead the next opening is looked for, beyond the last freeze's end.
_LOOKAHEAD = timedelta(days=8)
_MAX_HORIZON = timedelta(days=3 * 366)


class Day(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"


_WEEKDAY = {day: i for i, day in enumerate(Day)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeeklyWindow(_Strict):
    """A weekly opening: on each of `days`, from `start` to `end` (local wall-clock time)."""

    days: list[Day] = Field(min_length=1)
    start: time
    end: time

    @field_validator("start", "end")
    @classmethod
    def _naive(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("give a wall-clock time without an offset (set `timezone` instead)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WeeklyWindow:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would be empty")
        return self


class Freeze(_Strict):
    """No deployment from `start` to `end`, whatever the windows say."""

    start: datetime
    end: datetime
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Freeze:
        if self.start.tzinfo is not None and self.end.tzinfo is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class EnvironmentWindows(_Strict):
    """One environment's windows, freezes and what to do outside them.

    Attributes:
        timezone: IANA time zone of the windows' times (and of freezes written without offset).
        outside_window: `wait` for the next opening, or `refuse` the deployment.
        windows: weekly openings; none means always open.
        freezes: absolute periods in which nothing deploys.
    """

    timezone: str = "UTC"
    outside_window: Literal["wait", "refuse"] = "wait"
    windows: list[WeeklyWindow] = Field(default_factory=list)
    freezes: list[Freeze] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("freezes")
    @classmethod
    def _localize_freezes(cls, value: list[Freeze], info: ValidationInfo) -> list[Freeze]:
        # A freeze written without an offset means the environment's own wall clock.
        zone = ZoneInfo(info.data.get("timezone", "UTC"))
        freezes = []
        for i, freeze in enumerate(value):
            start = freeze.start if freeze.start.tzinfo else freeze.start.replace(tzinfo=zone)
            end = freeze.end if freeze.end.tzinfo else freeze.end.replace(tzinfo=zone)
            if end.astimezone(UTC) <= start.astimezone(UTC):
                raise ValueError(f"freeze {i} ({freeze.reason!r}): end must be after start")
            freezes.append(Freeze(start=start, end=end, reason=freeze.reason))
        return freezes

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)


class WindowDecision(BaseModel):
    """May a deployment start now, and if not, when.

    Attributes:
        allowed: the deployment may start now.
        wait_until: when it is not allowed and the environment waits: the next opening (UTC).
        reason: one line for people and the CR.
        exempt: an emergency that was let through regardless of windows and freezes.
    """

    model_config = ConfigDict(frozen=True)

    allowed: bool
    wait_until: datetime | None = None
    reason: str
    exempt: bool = False

    @property
    def action(self) -> Literal["proceed", "wait", "refuse"]:
        """What the deploy flow does: go ahead, wait until `wait_until`, or refuse."""
        if self.allowed:
            return "proceed"
        return "wait" if self.wait_until is not None else "refuse"


def _openings(
    spec: EnvironmentWindows, since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """The window intervals (UTC) overlapping [since, until], in order."""
    zone = spec.zone
    first = since.astimezone(zone).date() - timedelta(days=1)  # a window may span midnight
    last = until.astimezone(zone).date()
    out = []
    day = first
    while day <= last:
        for window in spec.windows:
            if day.weekday() not in {_WEEKDAY[d] for d in window.days}:
                continue
            end_day = day + timedelta(days=1) if window.end <= window.start else day
            # Built in local wall time and converted to UTC, so a window keeps its wall-clock
            # hours across a DST change; compared in UTC because aware datetimes sharing a
            # tzinfo compare by wall time and would ignore the fold.
            start = _local(day, window.start, zone)
            end = _local(end_day, window.end, zone)
            if end > since and start <= until:
                out.append((start, end))
        day += timedelta(days=1)
    out.sort()
    return out


def _local(day: date, at: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _freeze_at(spec: EnvironmentWindows, moment: datetime) -> Freeze | None:
    for freeze in spec.freezes:
        if freeze.start.astimezone(UTC) <= moment < freeze.end.astimezone(UTC):
            return freeze
    return None


def _open_at(openings: list[tuple[datetime, datetime]], moment: datetime) -> bool:
    return any(start <= moment < end for start, end in openings)


def _next_opening(spec: EnvironmentWindows, now: datetime) -> datetime | None:
    """The first moment at or after `now` inside a window and outside every freeze."""
    last_freeze = max((f.end.astimezone(UTC) for f in spec.freezes), default=now)
    horizon = min(max(now, last_freeze) + _LOOKAHEAD, now + _MAX_HORIZON)
    openings = (
        _openings(spec, now, horizon) if spec.windows else [(now, horizon + timedelta(days=1))]
    )
    # The answer is `now`, a window's start or a freeze's end: try them in order.
    candidates = {now}
    candidates.update(start for start, _ in openings if start >= now)
    candidates.update(f.end.astimezone(UTC) for f in spec.freezes if f.end.astimezone(UTC) >= now)
    for moment in sorted(candidates):
        if moment > horizon:
            break
        if _open_at(openings, moment) and _freeze_at(spec, moment) is None:
            return moment
    return None


def outside_windows(spec: EnvironmentWindows, moments: Iterable[datetime]) -> list[datetime]:
    """The moments (aware) that fall outside every weekly window; freezes are not considered.

    A schedule is checked with this: freezes come and go, and the deploy flow itself waits for
    or refuses a run that starts in one.
    """
    if not spec.windows:
        return []
    out = []
    for moment in moments:
        at = moment.astimezone(UTC)
        if not _open_at(_openings(spec, at, at), at):
            out.append(moment)
    return out


def _when(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).isoformat()


def decide_window(
    spec: EnvironmentWindows | None, environment: str, now: datetime, emergency: bool
) -> WindowDecision:
    """Decide whether a deployment to `environment` may start at `now`.

    Args:
        spec: the environment's windows and freezes; None means always open.
        environment: where the deployment goes (named in the reasons).
        now: the current time; it must carry a time zone.
        emergency: an emergency change, exempt from windows and freezes.

    Returns:
        The decision; outside a window it waits (`wait_until` set) or refuses, as the
        environment's `outside_window` says.

    Raises:
        BadInput: when `now` has no time zone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise BadInput("now must carry a time zone")
    now = now.astimezone(UTC)
    if spec is None or not (spec.windows or spec.freezes):
        return WindowDecision(allowed=True, reason=f"no change window configured for {environment}")
    zone = spec.zone
    freeze = _freeze_at(spec, now)
    in_window = not spec.windows or _open_at(_openings(spec, now, now), now)
    if freeze is None and in_window:
        return WindowDecision(allowed=True, reason=f"inside a change window of {environment}")
    if freeze is not None:
        blocked = f"{environment} is frozen until {_when(freeze.end, zone)} ({freeze.reason})"
    else:
        blocked = f"outside the change windows of {environment}"
    if emergency:
        return WindowDecision(
            allowed=True, exempt=True, reason=f"emergency: exempt from change windows ({blocked})"
        )
    opening = _next_opening(spec, now)
    if opening is None:
        return WindowDecision(allowed=False, reason=f"{blocked}; no opening in sight: refused")
    if spec.outside_window == "refuse":
        return WindowDecision(
            allowed=False, reason=f"{blocked}; refused (next opening {_when(opening, zone)})"
        )
    return WindowDecision(
        allowed=False,
        wait_until=opening,
        reason=f"{blocked}; waiting until {_when(opening, zone)}",
    )
