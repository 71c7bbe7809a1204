"""JUnit XML (pytest, Surefire, Gradle...): failed and errored test cases become findings."""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree.ElementTree import Element

from changeflow.models import Finding, Severity
from changeflow.reports.common import (
    ReportOutcome,
    Thresholds,
    Unparseable,
    n,
    outcome,
    parse_xml,
    truncate,
)

__all__ = ["parse_junit"]


def _testcases(node: Element, suite: str) -> Iterator[tuple[str, Element]]:
    for child in node:
        if child.tag == "testcase":
            yield suite, child
        elif child.tag in ("testsuite", "testsuites"):
            yield from _testcases(child, child.get("name") or suite)


def _claimed_problems(root: Element) -> int:
    """The most failures + errors any suite's attributes claim (nested suites roll up)."""
    claimed = 0
    for suite in [root, *root.iter("testsuite")]:
        try:
            claimed = max(claimed, int(suite.get("failures", 0)) + int(suite.get("errors", 0)))
        except ValueError:
            continue
    return claimed


def _problem(suite: str, case: Element, problem: Element) -> Finding:
    lines = (problem.text or "").strip().splitlines()
    message = problem.get("message") or (lines[0] if lines else problem.get("type"))
    return Finding(
        id=f"{case.get('classname') or suite}::{case.get('name', '')}",
        severity=Severity.high,
        description=truncate(message or problem.tag),
    )


def parse_junit(data: bytes, thresholds: Thresholds) -> ReportOutcome:
    """Judge a JUnit report: any failure, error, or a run that proves nothing fails it.

    Thresholds do not apply: every failing test is a high finding.
    """
    root = parse_xml(data)
    if root.tag not in ("testsuites", "testsuite"):
        raise Unparseable(f"root element is <{root.tag}>, not <testsuites> or <testsuite>")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    findings: list[Finding] = []
    bad_cases = 0
    for suite, case in _testcases(root, root.get("name", "")):
        counts["tests"] += 1
        # Only direct <failure>/<error> children: Surefire's <flakyFailure>/<rerunFailure> passed.
        problems = [child for child in case if child.tag in ("failure", "error")]
        for problem in problems:
            counts["failures" if problem.tag == "failure" else "errors"] += 1
            findings.append(_problem(suite, case, problem))
        if problems:
            bad_cases += 1
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
    passed = counts["tests"] - bad_cases - counts["skipped"]
    parts = [
        f"{n(counts['tests'], 'test')}: {passed} passed, {counts['failures']} failed, "
        f"{n(counts['errors'], 'error')}, {counts['skipped']} skipped"
    ]
    # Trust the testcases, but a suite claiming more problems than it lists is not a pass.
    claimed = _claimed_problems(root)
    if claimed > counts["failures"] + counts["errors"]:
        parts.append(f"suite attributes report {claimed} failures and errors")
    if passed == 0 and not findings:
        parts.append("no tests ran")
    failed = bool(findings) or len(parts) > 1
    return outcome(failed, parts, findings, counts)
