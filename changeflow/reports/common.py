"""What every report format shares: the outcome's shape, the thresholds and the findings helpers.

Each format's module turns bytes into a `ReportOutcome` with these helpers and raises
`Unparseable` when the report is not what its format promises; `parse_report` turns that into
failure evidence.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Collection
from enum import StrEnum
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pydantic import BaseModel, ConfigDict, Field

from changeflow.models import EvidenceResult, Finding, Severity

__all__ = [
    "MAX_DESCRIPTION",
    "NAMED",
    "ORDER",
    "ReportFormat",
    "ReportOutcome",
    "Thresholds",
    "Unparseable",
    "blocking",
    "cvss",
    "dig",
    "items",
    "json_object",
    "n",
    "outcome",
    "parse_xml",
    "policy",
    "tally",
    "truncate",
]

MAX_DESCRIPTION = 500
ORDER = list(Severity)  # most severe first
NAMED = {s.value: s for s in Severity} | {"none": Severity.info, "informational": Severity.info}


class ReportFormat(StrEnum):
    """The report formats a check can produce."""

    junit = "junit"
    sarif = "sarif"
    cyclonedx = "cyclonedx"
    detect_secrets = "detect-secrets"


class Thresholds(BaseModel):
    """Per-check configuration of what makes a report a failure."""

    model_config = ConfigDict(extra="forbid")

    fail_on: list[Severity] = Field(default_factory=lambda: [Severity.critical, Severity.high])
    min_components: int = Field(default=1, ge=0)


class ReportOutcome(BaseModel):
    """What a report says, ready to become evidence details and findings."""

    model_config = ConfigDict(extra="forbid")

    result: EvidenceResult
    summary: str
    findings: list[Finding] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)


class Unparseable(Exception):
    """The report is not what its format promises; the message says why."""


def truncate(text: str) -> str:
    """Trim a finding's description to `MAX_DESCRIPTION` characters."""
    text = text.strip()
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def n(count: int, singular: str, plural: str | None = None) -> str:
    """Say `count` things, e.g. "1 test", "2 tests"."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def dig(value: Any, *path: str | int) -> Any:
    """Walk JSON along `path`, giving None where the shape does not fit."""
    for key in path:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and 0 <= key < len(value) else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
    return value


def items(value: Any, what: str) -> list[dict[str, Any]]:
    """Return a JSON array of objects (None counts as empty); anything else is unparseable."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise Unparseable(f"{what} is not an array of objects")
    return value


def json_object(data: bytes) -> dict[str, Any]:
    """Parse a report whose top level must be a JSON object."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise Unparseable("expected a JSON object at the top level")
    return doc


def parse_xml(data: bytes) -> Element:
    """Parse XML that has no DTD, so no entity can expand or reach outside the document.

    Raises:
        Unparseable: the document declares a DTD, an entity or an external reference, or an
            encoding Python does not know.
        xml.etree.ElementTree.ParseError: it is not well-formed XML.
    """
    try:
        # Bytes, not text: expat then honours the BOM and the declared encoding itself.
        return fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise Unparseable("DOCTYPE and ENTITY declarations are not allowed") from None
    except LookupError as exc:  # pyexpat asks Python's codecs for an encoding it lacks
        raise Unparseable(str(exc)) from None


def cvss(score: Any) -> Severity | None:
    """Map a CVSS-like score (number or numeric string) to a severity."""
    if isinstance(score, bool) or not isinstance(score, (int, float, str)):
        return None
    try:
        value = float(score)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    for floor, severity in ((9, Severity.critical), (7, Severity.high), (4, Severity.medium)):
        if value >= floor:
            return severity
    return Severity.low if value > 0 else Severity.info


def _unique(findings: list[Finding]) -> list[Finding]:
    """Suffix repeated ids with #2, #3... so each id names one finding."""
    used: set[str] = set()
    unique = []
    for finding in findings:
        fid, count = finding.id, 1
        while fid in used:
            count += 1
            fid = f"{finding.id}#{count}"
        used.add(fid)
        unique.append(finding if fid == finding.id else finding.model_copy(update={"id": fid}))
    return unique


def tally(findings: list[Finding], noun: tuple[str, str]) -> tuple[str, dict[str, int]]:
    """Describe findings by severity, e.g. "2 findings (1 high, 1 low)", with matching counts."""
    by_severity = Counter(f.severity for f in findings)
    counts = {s.value: by_severity[s] for s in ORDER if by_severity[s]}
    counts["exempt"] = sum(f.has_exempt for f in findings)
    counts["fixed"] = sum(f.found_status == "fixed" and not f.has_exempt for f in findings)
    counts = {k: v for k, v in counts.items() if v}
    text = n(len(findings), *noun)
    return (
        f"{text} ({', '.join(f'{v} {k}' for k, v in counts.items())})" if counts else text
    ), counts


def blocking(findings: list[Finding], fail_on: Collection[Severity]) -> bool:
    """Whether any finding that is neither exempt nor fixed has a severity in `fail_on`."""
    return any(
        f.severity in fail_on and not f.has_exempt and f.found_status != "fixed" for f in findings
    )


def policy(fail_on: Collection[Severity]) -> str:
    """Say which severities fail the check, e.g. "failing on critical, high"."""
    return "failing on " + (", ".join(s.value for s in ORDER if s in fail_on) or "nothing")


def outcome(
    failed: bool, parts: list[str], findings: list[Finding], counts: dict[str, int]
) -> ReportOutcome:
    """Assemble the outcome: summary parts joined, finding ids made unique."""
    return ReportOutcome(
        result=EvidenceResult.failure if failed else EvidenceResult.success,
        summary="; ".join(parts),
        findings=_unique(findings),
        counts=counts,
    )
