"""SARIF 2.1 (bandit, semgrep, CodeQL...): results become findings, judged by severity."""

from __future__ import annotations

import re
from typing import Any, Literal

from changeflow.models import Finding, Severity
from changeflow.reports.common import (
    NAMED,
    ReportOutcome,
    Thresholds,
    Unparseable,
    blocking,
    cvss,
    dig,
    items,
    json_object,
    outcome,
    policy,
    tally,
    truncate,
)

__all__ = ["parse_sarif"]

_LEVELS = {
    "error": Severity.high,
    "warning": Severity.medium,
    "note": Severity.low,
    "none": Severity.info,
}
_BASELINE: dict[str, Literal["new", "existing", "fixed"]] = {
    "absent": "fixed",
    "unchanged": "existing",
    "updated": "existing",
}
_SECRETISH = re.compile(r"password|passwd|secret|token|credential|private key", re.IGNORECASE)
_QUOTED = re.compile(r"""(['"]).*?\1""")


def _severity(result: dict[str, Any], rule: dict[str, Any]) -> Severity:
    named = dig(result, "properties", "issue_severity")  # bandit: HIGH / MEDIUM / LOW
    if isinstance(named, str) and named.lower() in NAMED:
        return NAMED[named.lower()]
    for score in (
        dig(result, "properties", "security-severity"),
        dig(rule, "properties", "security-severity"),
    ):
        if severity := cvss(score):
            return severity
    # An explicit result level overrides the rule's default (SARIF 2.1 section 3.27.10).
    level = result.get("level") or dig(rule, "defaultConfiguration", "level")
    if level is None and result.get("kind", "fail") != "fail":
        level = "none"
    return _LEVELS.get(level if isinstance(level, str) else "warning", Severity.medium)


def _message(result: dict[str, Any], rule: dict[str, Any], rule_id: str) -> str:
    message = result.get("message")
    message_id = dig(message, "id")
    candidates = [
        dig(message, "text"),
        dig(message, "markdown"),
        dig(rule, "messageStrings", message_id, "text") if isinstance(message_id, str) else None,
    ]
    text = next((t for t in candidates if isinstance(t, str) and t.strip()), None)
    arguments = dig(message, "arguments")
    if text and isinstance(arguments, list):
        for i, argument in enumerate(arguments):
            text = text.replace(f"{{{i}}}", str(argument))
    if not text:
        fallback = dig(rule, "shortDescription", "text") or rule.get("name")
        text = fallback if isinstance(fallback, str) else rule_id
    # Tools quote the literal they flag (bandit: "Possible hardcoded password: 'x'").
    return _QUOTED.sub("'<redacted>'", text) if _SECRETISH.search(text) else text


def _finding(
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
    physical = dig(result, "locations", 0, "physicalLocation")
    uri = dig(physical, "artifactLocation", "uri")
    if uri is None and isinstance(art := dig(physical, "artifactLocation", "index"), int):
        uri = dig(run, "artifacts", art, "location", "uri")
    line = dig(physical, "region", "startLine")
    suppressions = items(result.get("suppressions"), "suppressions")
    return Finding(
        id=f"{rule_id}:{uri or 'unknown'}:{line if isinstance(line, int) else 0}",
        severity=_severity(result, rule),
        found_status=_BASELINE.get(str(result.get("baselineState")), "new"),
        has_exempt=any(s.get("status", "accepted") == "accepted" for s in suppressions),
        description=truncate(_message(result, rule, rule_id)),
    )


def parse_sarif(data: bytes, thresholds: Thresholds) -> ReportOutcome:
    """Judge a SARIF log: a blocking finding or a tool run that did not complete fails it."""
    doc = json_object(data)
    if not isinstance(doc.get("runs"), list):
        raise Unparseable("no runs[] array")
    findings: list[Finding] = []
    problems: list[str] = []
    for run in items(doc["runs"], "runs"):
        driver = dig(run, "tool", "driver")
        rules = items(dig(driver, "rules"), "tool.driver.rules")
        by_id = {str(r.get("id")): r for r in rules}
        for ext in items(dig(run, "tool", "extensions"), "tool.extensions"):
            by_id |= {str(r.get("id")): r for r in items(ext.get("rules"), "extension rules")}
        for inv in items(run.get("invocations"), "invocations"):
            if inv.get("executionSuccessful") is False:
                problems.append(f"{dig(driver, 'name') or 'tool'} run did not complete")
        for result in items(run.get("results"), "results"):
            if (finding := _finding(result, rules, by_id, run)) is not None:
                findings.append(finding)
    text, counts = tally(findings, ("finding", "findings"))
    failed = blocking(findings, thresholds.fail_on) or bool(problems)
    return outcome(failed, [text, policy(thresholds.fail_on), *problems], findings, counts)
