"""Signing records as they are written, and judging signatures as evidence is read.

The pipeline's key and the trust file come from the worker's settings
(`CHANGEFLOW_SIGNING_KEY_FILE` or `CHANGEFLOW_SIGNING_KEY_SECRET`, `CHANGEFLOW_TRUST_FILE`;
per role `CHANGEFLOW_CI_SIGNING_KEY_FILE`, `CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE`): CI signs
provenance, the deploy worker decisions; a key never crosses a task boundary, and without one
nothing is signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from prefect import get_run_logger, task

from blocks.signing import StatementSigner, Trust, load_signer, load_trust_file, open_envelope
from changeflow.attestations import evidence_statement, provenance_statement, vsa_statement
from changeflow.errors import IntegrityError
from changeflow.evidence_trust import TrustedEvidence, judge_build, judge_evidence
from changeflow.models import Asset, Evidence, utcnow
from changeflow.ports import EvidenceStore
from changeflow.summary import FoundEvidence, UnreadableEvidence
from tasks.io import IO

__all__ = [
    "current_trust",
    "judge_trust",
    "sign_decision",
    "sign_evidence",
    "sign_provenance",
]

BUILDER_ID = "https://changeflow.dev/builders/ci"
VERIFIER_ID = "https://changeflow.dev/verifiers/deploy"


def current_trust() -> Trust | None:
    """The trust file the worker is configured with, or None (records are then not judged)."""
    return load_trust_file()


def sign_evidence(
    evidence: Evidence, assets: list[Asset], signer: StatementSigner | None
) -> bytes | None:
    """A sealed record's signed envelope, stored with the record (None without a key)."""
    if signer is None:
        return None
    return signer.sign(evidence_statement(evidence, {a.id: a.uri for a in assets}))


@task(name="sign-provenance", **IO)
def sign_provenance(
    locker: EvidenceStore,
    *,
    run_id: str,
    repository_url: str,
    commit_sha: str,
    artifacts: Mapping[str, str],
    evidence_ids: list[str],
    started: datetime,
    run_url: str | None = None,
) -> str | None:
    """Sign and store the build's SLSA provenance; its sha256 (None without a key)."""
    signer = load_signer(role="ci")
    if signer is None:
        get_run_logger().warning("no signing key configured: the build's provenance is unsigned")
        return None
    statement = provenance_statement(
        builder_id=BUILDER_ID,
        run_id=run_id,
        repository_url=repository_url,
        commit_sha=commit_sha,
        artifacts=artifacts,
        evidence_ids=evidence_ids,
        started=started,
        finished=utcnow(),
        run_url=run_url,
    )
    return locker.put_provenance(run_id, signer.sign(statement))


@task(name="judge-trust", **IO)
def judge_trust(
    locker: EvidenceStore,
    found: FoundEvidence,
    builds: Mapping[str, str],
    trust: Trust,
    own: list[Evidence],
) -> tuple[FoundEvidence, TrustedEvidence]:
    """Judge every record's signature and every build's provenance under the trust file.

    Records a trusted provenance lists are read by id even when no marker names them any more
    (a hidden marker hides nothing); the run's own records are judged like the others.

    Args:
        locker: the evidence store.
        found: what the markers named.
        builds: asset id -> the build (`pipeline_run_id`) of the entry it is.
        trust: the trust file.
        own: the deployment run's own evidence.
    """
    policy = trust.policy
    runs = sorted(set(builds.values()))
    with ThreadPoolExecutor(8) as pool:
        provenance = list(pool.map(locker.get_provenance, runs))
    judged = {
        run: judge_build(run, [open_envelope(e, policy) for e in envelopes], policy)
        for run, envelopes in zip(runs, provenance, strict=True)
    }
    known = {r.id for r in found.records}
    missing = sorted({e for b in judged.values() for e in b.evidence} - known)
    records, unreadable = list(found.records), list(found.unreadable)
    for evidence_id in missing:
        try:
            records.append(locker.get_evidence(evidence_id))
        except IntegrityError as exc:
            # listed by a signed build and gone or altered: it blocks like any unreadable one
            listed = sorted(a for a, run in builds.items() if evidence_id in judged[run].evidence)
            unreadable.append(_unreadable(evidence_id, listed, str(exc)))
    everything = [*records, *own]
    with ThreadPoolExecutor(8) as pool:
        envelopes = list(pool.map(locker.get_evidence_envelope, [r.id for r in everything]))
    untrusted: dict[str, str] = {}
    counted: dict[str, str] = {}
    for record, envelope in zip(everything, envelopes, strict=True):
        opened = open_envelope(envelope, policy) if envelope is not None else None
        why = judge_evidence(record, opened, policy)
        if why:
            untrusted[record.id] = why
        elif opened is not None:
            counted[record.id] = opened.digest
    trusted = TrustedEvidence(
        untrusted=untrusted,
        envelopes=counted,
        builds={aid: judged[run] for aid, run in builds.items()},
    )
    return FoundEvidence(records=records, unreadable=unreadable), trusted


def _unreadable(evidence_id: str, assets: list[str], why: str) -> UnreadableEvidence:
    return UnreadableEvidence(evidence_id=evidence_id, assets=assets, reason=" ".join(why.split()))


def sign_decision(
    locker: EvidenceStore,
    *,
    change_request: str,
    resource_uri: str,
    policy_digest: str,
    inputs: Mapping[str, str],
    artifacts: Mapping[str, str],
    passed: bool,
) -> tuple[str, str] | None:
    """Sign and store the CR decision as a SLSA VSA; its url and sha256 (None without a key).

    A plain function: it runs while the CR is drafted, inside the filing task.
    """
    signer = load_signer(role="deploy")
    if signer is None:
        return None
    statement = vsa_statement(
        verifier_id=VERIFIER_ID,
        change_request=change_request,
        resource_uri=resource_uri,
        policy_uri="changeflow:readiness-policy",
        policy_digest=policy_digest,
        inputs=inputs,
        artifacts=artifacts,
        passed=passed,
        verified=utcnow(),
    )
    return locker.put_attestation(signer.sign(statement))
