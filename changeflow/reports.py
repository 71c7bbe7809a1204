"""Turn a tool's report (JUnit XML, SARIF, CycloneDX, detect-secrets) into an evidence outcome."""

from __future__ import annotations

import codecs
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from changeflow.errors import BadInput
from changeflow.models import EvidenceResult, Finding, Severity

__all__ = ["ReportFormat", "ReportOutcome", "Thresholds", "parse_report"]

MAX_DESCRIPTION = 500
_ORDER = list(Severity)  # most severe first
_NAMED = {s.value: s for s in Severity} | {"none": Severity.info, "informational": Severity.info}
_LEVELS = {
    "error": Severity.high,
    "warning": Severity.medium,
    "note": Severity.low,
    "none": Severity.info,
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_XML_ENCODING = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_PROLOG = re.compile(r"(?:\s|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_CDX_ROOT = re.compile(r"\{http://cyclonedx\.org/schema/bom/1\.\d+\}bom")
_SECRETISH = re.compile(r"password|passwd|secret|token|credential|private key", re.IGNORECASE)
_QUOTED = re.compile(r"""(['"]).*?\1""")


class ReportFormat(StrEnum):
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


class _Unparseable(Exception):
    """The report is not what its format promises; the message says why."""


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
            raise _Unparseable("empty report")
        return _PARSERS[kind](data, thresholds or Thresholds())
    except _Unparseable as exc:
        reason = str(exc)
    except ET.ParseError as exc:
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


# -- shared helpers --------------------------------------------------------------------------


def _truncate(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _dig(value: Any, *path: str | int) -> Any:
    """Walk JSON along `path`, giving None where the shape does not fit."""
    for key in path:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and 0 <= key < len(value) else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
    return value


def _items(value: Any, what: str) -> list[dict[str, Any]]:
    """Return a JSON array of objects (None counts as empty); anything else is unparseable."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _Unparseable(f"{what} is not an array of objects")
    return value


def _json_object(data: bytes) -> dict[str, Any]:
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise _Unparseable("expected a JSON object at the top level")
    return doc


def _parse_xml(data: bytes) -> ET.Element:
    """Parse XML that has no DTD, so no entity can expand or reach outside the document."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    declared = _XML_ENCODING.match(data)
    try:
        # Decoding here, not in expat, lets the DTD check below see exactly what expat will.
        text = data.decode(encoding or (declared[1].decode() if declared else "utf-8"))
    except LookupError as exc:
        raise _Unparseable(f"unknown encoding: {exc}") from None
    except UnicodeDecodeError as exc:
        raise _Unparseable(f"cannot decode: {exc}") from None
    prolog = _PROLOG.match(text)
    # A DTD can only sit in the prolog; "<!DOCTYPE" inside CDATA (e.g. a stack trace) is harmless.
    if text.startswith("<!", prolog.end() if prolog else 0):
        raise _Unparseable("DOCTYPE and ENTITY declarations are not allowed")
    return ET.fromstring(text)


def _cvss(score: Any) -> Severity | None:
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
        fid, n = finding.id, 1
        while fid in used:
            n += 1
            fid = f"{finding.id}#{n}"
        used.add(fid)
        unique.append(finding if fid == finding.id else finding.model_copy(update={"id": fid}))
    return unique


def _tally(findings: list[Finding], noun: tuple[str, str]) -> tuple[str, dict[str, int]]:
    """Describe findings by severity, e.g. "2 findings (1 high, 1 low)", with matching counts."""
    by_severity = Counter(f.severity for f in findings)
    counts = {s.value: by_severity[s] for s in _ORDER if by_severity[s]}
    counts["exempt"] = sum(f.has_exempt for f in findings)
    counts["fixed"] = sum(f.found_status == "fixed" and not f.has_exempt for f in findings)
    counts = {k: v for k, v in counts.items() if v}
    text = _n(len(findings), *noun)
    return (
        f"{text} ({', '.join(f'{v} {k}' for k, v in counts.items())})" if counts else text
    ), counts


def _blocking(findings: list[Finding], fail_on: Collection[Severity]) -> bool:
    """Whether any finding that is neither exempt nor fixed has a severity in `fail_on`."""
    return any(
        f.severity in fail_on and not f.has_exempt and f.found_status != "fixed" for f in findings
    )


def _policy(fail_on: Collection[Severity]) -> str:
    return "failing on " + (", ".join(s.value for s in _ORDER if s in fail_on) or "nothing")


def _outcome(
    failed: bool, parts: list[str], findings: list[Finding], counts: dict[str, int]
) -> ReportOutcome:
    return ReportOutcome(
        result=EvidenceResult.failure if failed else EvidenceResult.success,
        summary="; ".join(parts),
        findings=_unique(findings),
        counts=counts,
    )


# -- JUnit XML -------------------------------------------------------------------------------


def _testcases(node: ET.Element, suite: str) -> Iterator[tuple[str, ET.Element]]:
    for child in node:
        if child.tag == "testcase":
            yield suite, child
        elif child.tag in ("testsuite", "testsuites"):
            yield from _testcases(child, child.get("name") or suite)


def _claimed_problems(root: ET.Element) -> int:
    """The most failures + errors any suite's attributes claim (nested suites roll up)."""
    claimed = 0
    for suite in [root, *root.iter("testsuite")]:
        try:
            claimed = max(claimed, int(suite.get("failures", 0)) + int(suite.get("errors", 0)))
        except ValueError:
            continue
    return claimed


def _junit(data: bytes, thresholds: Thresholds) -> ReportOutcome:
    root = _parse_xml(data)
    if root.tag not in ("testsuites", "testsuite"):
        raise _Unparseable(f"root element is <{root.tag}>, not <testsuites> or <testsuite>")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    findings: list[Finding] = []
    bad_cases = 0
    for suite, case in _testcases(root, root.get("name", "")):
        counts["tests"] += 1
        # Only direct <failure>/<error> children: Surefire's <flakyFailure>/<rerunFailure> passed.
        problems = [child for child in case if child.tag in ("failure", "error")]
        for problem in problems:
            counts["failures" if problem.tag == "failure" else "errors"] += 1
            lines = (problem.text or "").strip().splitlines()
            message = problem.get("message") or (lines[0] if lines else problem.get("type"))
            findings.append(
                Finding(
                    id=f"{case.get('classname') or suite}::{case.get('name', '')}",
                    severity=Severity.high,
                    description=_truncate(message or problem.tag),
                )
            )
        if problems:
            bad_cases += 1
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
    passed = counts["tests"] - bad_cases - counts["skipped"]
    parts = [
        f"{_n(counts['tests'], 'test')}: {passed} passed, {counts['failures']} failed, "
        f"{_n(counts['errors'], 'error')}, {counts['skipped']} skipped"
    ]
    # Trust the testcases, but a suite claiming more problems than it lists is not a pass.
    claimed = _claimed_problems(root)
    if claimed > counts["failures"] + counts["errors"]:
        parts.append(f"suite attributes report {claimed} failures and errors")
    if passed == 0 and not findings:
        parts.append("no tests ran")
    failed = bool(findings) or len(parts) > 1
    return _outcome(failed, parts, findings, counts)


# -- SARIF 2.1 -------------------------------------------------------------------------------

_BASELINE: dict[str, Literal["new", "existing", "fixed"]] = {
    "absent": "fixed",
    "unchanged": "existing",
    "updated": "existing",
}


def _sarif_severity(result: dict[str, Any], rule: dict[str, Any]) -> Severity:
    named = _dig(result, "properties", "issue_severity")  # bandit: HIGH / MEDIUM / LOW
    if isinstance(named, str) and named.lower() in _NAMED:
        return _NAMED[named.lower()]
    for score in (
        _dig(result, "properties", "security-severity"),
        _dig(rule, "properties", "security-severity"),
    ):
        if severity := _cvss(score):
            return severity
    # An explicit result level overrides the rule's default (SARIF 2.1 section 3.27.10).
    level = result.get("level") or _dig(rule, "defaultConfiguration", "level")
    if level is None and result.get("kind", "fail") != "fail":
        level = "none"
    return _LEVELS.get(level if isinstance(level, str) else "warning", Severity.medium)


def _sarif_message(result: dict[str, Any], rule: dict[str, Any], rule_id: str) -> str:
    message = result.get("message")
    message_id = _dig(message, "id")
    candidates = [
        _dig(message, "text"),
        _dig(message, "markdown"),
        _dig(rule, "messageStrings", message_id, "text") if isinstance(message_id, str) else None,
    ]
    text = next((t for t in candidates if isinstance(t, str) and t.strip()), None)
    arguments = _dig(message, "arguments")
    if text and isinstance(arguments, list):
        for i, argument in enumerate(arguments):
            text = text.replace(f"{{{i}}}", str(argument))
    if not text:
        fallback = _dig(rule, "shortDescription", "text") or rule.get("name")
        text = fallback if isinstance(fallback, str) else rule_id
    # Tools quote the literal they flag (bandit: "Possible hardcoded password: 'x'").
    return _QUOTED.sub("'<redacted>'", text) if _SECRETISH.search(text) else text


def _sarif_finding(
    result: dict[str, Any], rules: list[dict[str, Any]], by_id: dict[str, dict[str, Any]], run: Any
) -> Finding | None:
    if result.get("kind") in ("pass", "notApplicable"):
        return None
    ref = result["rule"] if isinstance(result.get("rule"), dict) else {}
    index = result.get("ruleIndex", ref.get("index"))
    rule_id = result.get("ruleId") or ref.get("id")
    if isinstance(index, int) and "toolComponent" not in ref and 0 <= index < len(rules):
        rule = rules[index]
    else:
        rule = by_id.get(str(rule_id), {})
    rule_id = str(rule_id or rule.get("id") or "unknown")
    physical = _dig(result, "locations", 0, "physicalLocation")
    uri = _dig(physical, "artifactLocation", "uri")
    if uri is None and isinstance(art := _dig(physical, "artifactLocation", "index"), int):
        uri = _dig(run, "artifacts", art, "location", "uri")
    line = _dig(physical, "region", "startLine")
    suppressions = _items(result.get("suppressions"), "suppressions")
    return Finding(
        id=f"{rule_id}:{uri or 'unknown'}:{line if isinstance(line, int) else 0}",
        severity=_sarif_severity(result, rule),
        found_status=_BASELINE.get(str(result.get("baselineState")), "new"),
        has_exempt=any(s.get("status", "accepted") == "accepted" for s in suppressions),
        description=_truncate(_sarif_message(result, rule, rule_id)),
    )


def _sarif(data: bytes, thresholds: Thresholds) -> ReportOutcome:
    doc = _json_object(data)
    if not isinstance(doc.get("runs"), list):
        raise _Unparseable("no runs[] array")
    findings: list[Finding] = []
    problems: list[str] = []
    for run in _items(doc["runs"], "runs"):
        driver = _dig(run, "tool", "driver")
        rules = _items(_dig(driver, "rules"), "tool.driver.rules")
        by_id = {str(r.get("id")): r for r in rules}
        for ext in _items(_dig(run, "tool", "extensions"), "tool.extensions"):
            by_id |= {str(r.get("id")): r for r in _items(ext.get("rules"), "extension rules")}
        for inv in _items(run.get("invocations"), "invocations"):
            if inv.get("executionSuccessful") is False:
                problems.append(f"{_dig(driver, 'name') or 'tool'} run did not complete")
        for result in _items(run.get("results"), "results"):
            if (finding := _sarif_finding(result, rules, by_id, run)) is not None:
                findings.append(finding)
    text, counts = _tally(findings, ("finding", "findings"))
    failed = _blocking(findings, thresholds.fail_on) or bool(problems)
    return _outcome(failed, [text, _policy(thresholds.fail_on), *problems], findings, counts)


# -- CycloneDX -------------------------------------------------------------------------------


def _count_components(components: Any) -> int:
    return sum(1 + _count_components(c.get("components")) for c in _items(components, "components"))


def _cdx_json(data: bytes) -> tuple[int, list[dict[str, Any]] | None]:
    doc = _json_object(data)
    if doc.get("bomFormat") != "CycloneDX":
        raise _Unparseable('bomFormat is not "CycloneDX"')
    if not str(doc.get("specVersion", "")).startswith("1."):
        raise _Unparseable("specVersion is missing or not 1.x")
    vulns = doc.get("vulnerabilities")
    found = None if vulns is None else _items(vulns, "vulnerabilities")
    return _count_components(doc.get("components")), found


def _cdx_xml(data: bytes) -> tuple[int, list[dict[str, Any]] | None]:
    root = _parse_xml(data)
    if not _CDX_ROOT.fullmatch(root.tag):
        raise _Unparseable(f"root element is {root.tag}, not a CycloneDX 1.x <bom>")
    ns = root.tag[: root.tag.index("}") + 1]

    def count(parent: ET.Element) -> int:
        # Direct children only: metadata/tools/components lists the tools, not the contents.
        return sum(1 + count(c) for c in parent.iterfind(f"{ns}components/{ns}component"))

    def vuln(v: ET.Element) -> dict[str, Any]:
        # Shaped like the JSON form so one function turns both into findings.
        ratings = v.iterfind(f"{ns}ratings/{ns}rating")
        return {
            "id": v.findtext(f"{ns}id"),
            "bom-ref": v.get("bom-ref"),
            "description": v.findtext(f"{ns}description") or v.findtext(f"{ns}detail"),
            "ratings": [
                {"severity": r.findtext(f"{ns}severity"), "score": r.findtext(f"{ns}score")}
                for r in ratings
            ],
            "affects": [
                {"ref": t.findtext(f"{ns}ref")} for t in v.iterfind(f"{ns}affects/{ns}target")
            ],
        }

    section = root.find(f"{ns}vulnerabilities")
    vulns = None if section is None else [vuln(v) for v in section.iterfind(f"{ns}vulnerability")]
    return count(root), vulns


def _cdx_finding(vuln: dict[str, Any]) -> Finding:
    ratings = _items(vuln.get("ratings"), "ratings")
    rated = [
        _NAMED.get(str(r.get("severity") or "").lower()) or _cvss(r.get("score")) for r in ratings
    ]
    # No usable rating ("unknown" or none): medium, so it shows without failing by default.
    severity = min((s for s in rated if s), key=_ORDER.index, default=Severity.medium)
    vid = str(vuln.get("id") or vuln.get("bom-ref") or "unknown")
    refs = [str(a["ref"]) for a in _items(vuln.get("affects"), "affects") if a.get("ref")]
    text = str(vuln.get("description") or vuln.get("detail") or vid)
    return Finding(
        id=f"{vid}:{refs[0]}" if refs else vid,
        severity=severity,
        description=_truncate(f"{text} (affects {', '.join(refs)})" if refs else text),
    )


def _cyclonedx(data: bytes, thresholds: Thresholds) -> ReportOutcome:
    is_json = data.lstrip().removeprefix(codecs.BOM_UTF8).lstrip()[:1] in (b"{", b"[")
    components, vulns = (_cdx_json if is_json else _cdx_xml)(data)
    findings = [_cdx_finding(v) for v in vulns or []]
    text, counts = _tally(findings, ("vulnerability", "vulnerabilities"))
    parts = [_n(components, "component")]
    # An SBOM without vulnerability data says nothing about vulnerabilities: do not claim 0.
    if vulns is not None:
        parts += [text, _policy(thresholds.fail_on)]
    too_few = components < thresholds.min_components
    if too_few:
        parts.append(f"fewer than the {thresholds.min_components} required")
    failed = too_few or _blocking(findings, thresholds.fail_on)
    return _outcome(failed, parts, findings, {"components": components, **counts})


# -- detect-secrets --------------------------------------------------------------------------


def _detect_secrets(data: bytes, thresholds: Thresholds) -> ReportOutcome:
    doc = _json_object(data)
    results = doc.get("results")
    if not isinstance(results, dict):
        raise _Unparseable("no results{} object")
    findings: list[Finding] = []
    files: set[str] = set()
    for path, secrets in results.items():
        for secret in _items(secrets, f"results[{path!r}]"):
            kind, line = secret.get("type"), secret.get("line_number")
            if not isinstance(kind, str) or not isinstance(line, int) or isinstance(line, bool):
                raise _Unparseable(f"a secret in {path!r} lacks type or line_number")
            name = secret["filename"] if isinstance(secret.get("filename"), str) else path
            files.add(name)
            exempt = secret.get("is_secret") is False  # audited as a false positive
            verified = secret.get("is_verified") is True  # the provider accepted it: live
            # Type and place only: neither the secret nor its hash may reach evidence.
            findings.append(
                Finding(
                    id=f"{name}:{line}:{kind}",
                    severity=Severity.critical if verified else Severity.high,
                    has_exempt=exempt,
                    description=f"possible {kind} in {name} line {line}"
                    + (" (audited: not a secret)" if exempt else ""),
                )
            )
    text, counts = _tally(findings, ("potential secret", "potential secrets"))
    parts = [f"{text} in {_n(len(files), 'file')}", "failing on any not audited as false positive"]
    return _outcome(_blocking(findings, set(Severity)), parts, findings, counts)


_PARSERS: dict[ReportFormat, Callable[[bytes, Thresholds], ReportOutcome]] = {
    ReportFormat.junit: _junit,
    ReportFormat.sarif: _sarif,
    ReportFormat.cyclonedx: _cyclonedx,
    ReportFormat.detect_secrets: _detect_secrets,
}
