"""CycloneDX 1.x SBOMs, JSON or XML: components are counted, vulnerabilities become findings."""

from __future__ import annotations

import codecs
import re
from typing import Any
from xml.etree.ElementTree import Element

from changeflow.models import Finding, Severity
from changeflow.reports.common import (
    NAMED,
    ORDER,
    ReportOutcome,
    Thresholds,
    Unparseable,
    blocking,
    cvss,
    items,
    json_object,
    n,
    outcome,
    parse_xml,
    policy,
    tally,
    truncate,
)

__all__ = ["parse_cyclonedx"]

_ROOT = re.compile(r"\{http://cyclonedx\.org/schema/bom/1\.\d+\}bom")


def _count_components(components: Any) -> int:
    return sum(1 + _count_components(c.get("components")) for c in items(components, "components"))


def _from_json(data: bytes) -> tuple[int, list[dict[str, Any]] | None]:
    doc = json_object(data)
    if doc.get("bomFormat") != "CycloneDX":
        raise Unparseable('bomFormat is not "CycloneDX"')
    if not str(doc.get("specVersion", "")).startswith("1."):
        raise Unparseable("specVersion is missing or not 1.x")
    vulns = doc.get("vulnerabilities")
    found = None if vulns is None else items(vulns, "vulnerabilities")
    return _count_components(doc.get("components")), found


def _from_xml(data: bytes) -> tuple[int, list[dict[str, Any]] | None]:
    root = parse_xml(data)
    if not _ROOT.fullmatch(root.tag):
        raise Unparseable(f"root element is {root.tag}, not a CycloneDX 1.x <bom>")
    ns = root.tag[: root.tag.index("}") + 1]

    def count(parent: Element) -> int:
        # Direct children only: metadata/tools/components lists the tools, not the contents.
        return sum(1 + count(c) for c in parent.iterfind(f"{ns}components/{ns}component"))

    def vuln(v: Element) -> dict[str, Any]:
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


def _finding(vuln: dict[str, Any]) -> Finding:
    ratings = items(vuln.get("ratings"), "ratings")
    rated = [
        NAMED.get(str(r.get("severity") or "").lower()) or cvss(r.get("score")) for r in ratings
    ]
    # No usable rating ("unknown" or none): medium, so it shows without failing by default.
    severity = min((s for s in rated if s), key=ORDER.index, default=Severity.medium)
    vid = str(vuln.get("id") or vuln.get("bom-ref") or "unknown")
    refs = [str(a["ref"]) for a in items(vuln.get("affects"), "affects") if a.get("ref")]
    text = str(vuln.get("description") or vuln.get("detail") or vid)
    return Finding(
        id=f"{vid}:{refs[0]}" if refs else vid,
        severity=severity,
        description=truncate(f"{text} (affects {', '.join(refs)})" if refs else text),
    )


def parse_cyclonedx(data: bytes, thresholds: Thresholds) -> ReportOutcome:
    """Judge an SBOM: too few components or a blocking vulnerability fails it."""
    is_json = data.lstrip().removeprefix(codecs.BOM_UTF8).lstrip()[:1] in (b"{", b"[")
    components, vulns = (_from_json if is_json else _from_xml)(data)
    findings = [_finding(v) for v in vulns or []]
    text, counts = tally(findings, ("vulnerability", "vulnerabilities"))
    parts = [n(components, "component")]
    # An SBOM without vulnerability data says nothing about vulnerabilities: do not claim 0.
    if vulns is not None:
        parts += [text, policy(thresholds.fail_on)]
    too_few = components < thresholds.min_components
    if too_few:
        parts.append(f"fewer than the {thresholds.min_components} required")
    failed = too_few or blocking(findings, thresholds.fail_on)
    return outcome(failed, parts, findings, {"components": components, **counts})
