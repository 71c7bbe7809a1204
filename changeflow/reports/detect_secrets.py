"""detect-secrets scans and baselines: every secret not audited as a false positive fails."""

from __future__ import annotations

from changeflow.models import Finding, Severity
from changeflow.reports.common import (
    ReportOutcome,
    Thresholds,
    Unparseable,
    blocking,
    items,
    json_object,
    n,
    outcome,
    tally,
)

__all__ = ["parse_detect_secrets"]


def parse_detect_secrets(data: bytes, thresholds: Thresholds) -> ReportOutcome:
    """Judge a detect-secrets report; thresholds do not apply, any live secret fails it."""
    doc = json_object(data)
    results = doc.get("results")
    if not isinstance(results, dict):
        raise Unparseable("no results{} object")
    findings: list[Finding] = []
    files: set[str] = set()
    for path, secrets in results.items():
        for secret in items(secrets, f"results[{path!r}]"):
            kind, line = secret.get("type"), secret.get("line_number")
            if not isinstance(kind, str) or not isinstance(line, int) or isinstance(line, bool):
                raise Unparseable(f"a secret in {path!r} lacks type or line_number")
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
    text, counts = tally(findings, ("potential secret", "potential secrets"))
    parts = [f"{text} in {n(len(files), 'file')}", "failing on any not audited as false positive"]
    return outcome(blocking(findings, set(Severity)), parts, findings, counts)
