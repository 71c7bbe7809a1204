"""Turn a tool's report (JUnit XML, SARIF, CycloneDX, detect-secrets) into an evidence outcome.

One module per format; `common` holds what they share. A new format is a module with a
`parse_<format>(data, thresholds)` function, a `ReportFormat` member and a line in `_PARSERS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from xml.etree.ElementTree import ParseError

from changeflow.errors import BadInput
from changeflow.models import EvidenceResult
from changeflow.reports.common import ReportFormat, ReportOutcome, Thresholds, Unparseable
from changeflow.reports.cyclonedx import parse_cyclonedx
from changeflow.reports.detect_secrets import parse_detect_secrets
from changeflow.reports.junit import parse_junit
from changeflow.reports.sarif import parse_sarif

__all__ = ["ReportFormat", "ReportOutcome", "Thresholds", "parse_report"]

_PARSERS: dict[ReportFormat, Callable[[bytes, Thresholds], ReportOutcome]] = {
    ReportFormat.junit: parse_junit,
    ReportFormat.sarif: parse_sarif,
    ReportFormat.cyclonedx: parse_cyclonedx,
    ReportFormat.detect_secrets: parse_detect_secrets,
}


def parse_report(
    fmt: ReportFormat | str, data: bytes, thresholds: Thresholds | None = None
) -> ReportOutcome:
    """Read one tool report and judge it against `thresholds`.

    A report that cannot be read is a failure (summary "unparseable <format> report: ..."),
    never an exception: a broken tool run must not pass a check.

    Raises:
        BadInput: `fmt` is not one of the supported formats.
    """
    try:
        kind = ReportFormat(fmt)
    except ValueError:
        allowed = ", ".join(f.value for f in ReportFormat)
        raise BadInput(f"unknown report format {fmt!r}: use one of {allowed}") from None
    try:
        if not data.strip():
            raise Unparseable("empty report")
        return _PARSERS[kind](data, thresholds or Thresholds())
    except Unparseable as exc:
        reason = str(exc)
    except ParseError as exc:
        reason = f"bad XML: {exc}"
    except json.JSONDecodeError as exc:
        reason = f"bad JSON: {exc}"
    # Last resort for shapes the checks above missed: the contract is "never raises".
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    reason = " ".join(reason.split())[:200]
    return ReportOutcome(
        result=EvidenceResult.failure, summary=f"unparseable {kind.value} report: {reason}"
    )
