"""in-toto Statements (v1) for every record changeflow signs; pure data, no keys.

| record | predicate |
| --- | --- |
| test evidence (unit, acceptance tests) | in-toto test-result v0.1 |
| other evidence | changeflow evidence v1 (docs/attestations.md) |
| a CI build | SLSA Provenance v1 (its evidence ids in `runDetails.byproducts`) |
| a CR decision | SLSA Verification Summary v1 |

Each statement binds its record: an evidence statement carries the record's id (the sha256 of
its canonical JSON) as a resource digest, so a signature over it vouches for exactly that record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from changeflow.canonical import sha256_hex
from changeflow.evidence import DIGEST_URI
from changeflow.models import Evidence, EvidenceResult

__all__ = [
    "CHANGEFLOW_EVIDENCE",
    "PAYLOAD_TYPE",
    "PROVENANCE_V1",
    "STATEMENT_V1",
    "TEST_RESULT",
    "TEST_TYPES",
    "VSA_V1",
    "evidence_statement",
    "provenance_evidence",
    "provenance_statement",
    "statement_evidence_id",
    "statement_time",
    "subject",
    "vsa_statement",
]

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
VSA_V1 = "https://slsa.dev/verification_summary/v1"
CHANGEFLOW_EVIDENCE = "https://changeflow.dev/evidence/v1"
BUILD_TYPE = "https://changeflow.dev/ci/v1"
EVIDENCE_RESOURCE = "changeflow-evidence"

TEST_TYPES = frozenset({"com.ibm.unit_tests", "com.ibm.acceptance_tests"})
"""Evidence types signed with the test-result predicate; every other type uses changeflow's."""

_COMMIT_URI = re.compile(r"#(?P<sha>[0-9a-f]{40})$")
_TEST_RESULTS = {
    EvidenceResult.success: "PASSED",
    EvidenceResult.failure: "FAILED",
    EvidenceResult.pending: "WARNED",
}


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def subject(uri: str) -> dict[str, Any]:
    """An in-toto subject for an asset uri: an artifact's or image's sha256, a commit's sha,
    else the sha256 of the uri itself (its asset id)."""
    match = DIGEST_URI.match(uri)
    if match:
        return {"name": match["name"], "digest": {"sha256": match["hex"]}}
    commit = _COMMIT_URI.search(uri)
    if commit:
        return {"name": uri, "digest": {"gitCommit": commit["sha"]}}
    return {"name": uri, "digest": {"sha256": sha256_hex(uri.encode("utf-8"))}}


def _statement(
    subjects: list[dict[str, Any]], predicate_type: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    return {
        "_type": STATEMENT_V1,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def evidence_statement(evidence: Evidence, uris: Mapping[str, str]) -> dict[str, Any]:
    """The statement of one evidence record about its assets.

    Args:
        evidence: the sealed record.
        uris: asset id -> uri (an asset without one is named by its id).
    """
    subjects = [
        subject(uris[aid]) if aid in uris else {"name": aid, "digest": {"sha256": aid}}
        for aid in evidence.assets
    ]
    record = {
        "name": EVIDENCE_RESOURCE,
        "digest": {"sha256": evidence.id},
        "annotations": {
            "evidence_type_id": evidence.evidence_type_id,
            "date": _stamp(evidence.date),
            "result": evidence.result.value,
            "tool": evidence.details.tool,
            "pipeline_run_id": evidence.origin.pipeline_run_id,
        },
    }
    if evidence.evidence_type_id in TEST_TYPES:
        predicate: dict[str, Any] = {
            "result": _TEST_RESULTS[evidence.result],
            "configuration": [record],
            "passedTests": [],
            "warnedTests": [],
            "failedTests": [],
        }
        if evidence.origin.pipeline_run_url:
            predicate["url"] = evidence.origin.pipeline_run_url
        return _statement(subjects, TEST_RESULT, predicate)
    predicate = {
        "evidence": record,
        "summary": evidence.details.summary or "",
        "attachments": [
            {"name": a.label or "", "digest": {"sha256": a.hash.removeprefix("sha256:")}}
            for a in evidence.attachments
        ],
    }
    return _statement(subjects, CHANGEFLOW_EVIDENCE, predicate)


def statement_evidence_id(statement: Mapping[str, Any]) -> str | None:
    """The evidence record a statement vouches for (its id), or None."""
    predicate = statement.get("predicate") or {}
    if statement.get("predicateType") == TEST_RESULT:
        resources = predicate.get("configuration") or []
    elif statement.get("predicateType") == CHANGEFLOW_EVIDENCE:
        resources = [predicate.get("evidence") or {}]
    else:
        return None
    for resource in resources:
        if isinstance(resource, dict) and resource.get("name") == EVIDENCE_RESOURCE:
            value = (resource.get("digest") or {}).get("sha256")
            return value if isinstance(value, str) else None
    return None


def provenance_statement(
    *,
    builder_id: str,
    run_id: str,
    repository_url: str,
    commit_sha: str,
    artifacts: Mapping[str, str],
    evidence_ids: Iterable[str],
    started: datetime,
    finished: datetime,
    run_url: str | None = None,
) -> dict[str, Any]:
    """SLSA Provenance v1 of one CI build.

    Args:
        builder_id: the CI builder's id (a URI).
        run_id: the build's `pipeline_run_id`, as its entries record it.
        repository_url: the source repository.
        commit_sha: the source commit, as the resolved dependency.
        artifacts: artifact file name -> sha256 hex: the subjects.
        evidence_ids: every evidence record the build produced (its byproducts).
        started: when the build started.
        finished: when it finished: the statement's time.
        run_url: where the run can be seen.
    """
    metadata: dict[str, Any] = {
        "invocationId": run_id,
        "startedOn": _stamp(started),
        "finishedOn": _stamp(finished),
    }
    byproducts: list[dict[str, Any]] = [
        {"name": EVIDENCE_RESOURCE, "digest": {"sha256": eid}} for eid in sorted(set(evidence_ids))
    ]
    if run_url:
        byproducts.append({"name": "run", "uri": run_url})
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"repository": repository_url, "commit": commit_sha},
            "internalParameters": {"pipeline_run_id": run_id},
            "resolvedDependencies": [
                {"uri": f"git+{repository_url}", "digest": {"gitCommit": commit_sha}}
            ],
        },
        "runDetails": {
            "builder": {"id": builder_id},
            "metadata": metadata,
            "byproducts": byproducts,
        },
    }
    subjects = [{"name": n, "digest": {"sha256": h}} for n, h in sorted(artifacts.items())]
    return _statement(subjects, PROVENANCE_V1, predicate)


def provenance_evidence(statement: Mapping[str, Any]) -> tuple[str, set[str]] | None:
    """A provenance statement's build (`pipeline_run_id`) and evidence ids, or None."""
    if statement.get("predicateType") != PROVENANCE_V1:
        return None
    try:
        predicate = statement["predicate"]
        run_id = predicate["buildDefinition"]["internalParameters"]["pipeline_run_id"]
        byproducts = predicate["runDetails"].get("byproducts") or []
    except (KeyError, TypeError, AttributeError):
        return None
    ids = {
        b["digest"]["sha256"]
        for b in byproducts
        if isinstance(b, dict) and b.get("name") == EVIDENCE_RESOURCE and "digest" in b
    }
    return (run_id, ids) if isinstance(run_id, str) else None


def vsa_statement(
    *,
    verifier_id: str,
    change_request: str,
    resource_uri: str,
    policy_uri: str,
    policy_digest: str,
    inputs: Mapping[str, str],
    artifacts: Mapping[str, str],
    passed: bool,
    verified: datetime,
) -> dict[str, Any]:
    """SLSA Verification Summary v1 of a CR decision.

    Args:
        verifier_id: who decided (changeflow's deploy worker).
        change_request: the CR's id.
        resource_uri: the CR, as a URI.
        policy_uri: the policy the evidence was judged under.
        policy_digest: `sha256:<hex>` of the policy's canonical JSON.
        inputs: uri -> `sha256:<hex>` of every attestation relied on (and the summary).
        artifacts: entry name -> `sha256:<hex>` of each artifact deployed: the subjects.
        passed: the readiness decision.
        verified: when it was decided.
    """
    predicate = {
        "verifier": {"id": verifier_id},
        "timeVerified": _stamp(verified),
        "resourceUri": resource_uri,
        "policy": {"uri": policy_uri, "digest": _digest_set(policy_digest)},
        "inputAttestations": [
            {"uri": uri, "digest": _digest_set(d)} for uri, d in sorted(inputs.items())
        ],
        "verificationResult": "PASSED" if passed else "FAILED",
        "verifiedLevels": [],
        "slsaVersion": "1.0",
        "changeRequest": change_request,
    }
    subjects = [{"name": n, "digest": _digest_set(d)} for n, d in sorted(artifacts.items())] or [
        {"name": resource_uri, "digest": {"sha256": sha256_hex(resource_uri.encode())}}
    ]
    return _statement(subjects, VSA_V1, predicate)


def _digest_set(value: str) -> dict[str, str]:
    return {"sha256": value.removeprefix("sha256:")}


def statement_time(statement: Mapping[str, Any]) -> datetime | None:
    """When a statement says it was made: an evidence record's date, a build's finish, a
    decision's time; None when it says nothing readable."""
    predicate = statement.get("predicate") or {}
    kind = statement.get("predicateType")
    raw: Any = None
    if kind == TEST_RESULT:
        configuration = predicate.get("configuration") or [{}]
        raw = (configuration[0].get("annotations") or {}).get("date")
    elif kind == CHANGEFLOW_EVIDENCE:
        raw = ((predicate.get("evidence") or {}).get("annotations") or {}).get("date")
    elif kind == PROVENANCE_V1:
        raw = ((predicate.get("runDetails") or {}).get("metadata") or {}).get("finishedOn")
    elif kind == VSA_V1:
        raw = predicate.get("timeVerified")
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None else None
