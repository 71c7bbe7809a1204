"""What happened to an artifact: its builds and their evidence, its deployments, its incidents.

The reference's question ("did the build or test deployment of a deployed artifact contain any
incidents?") answered from the records alone: inventory entries name the build (CI run, commit)
and the artifact's asset uri, evidence is kept against that asset, CRs name the bytes they
deployed in their bill of materials, and incidents name the asset they are about. An artifact
is one entry name at one sha256: the same bytes promoted from branch to branch are one artifact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from changeflow.gate import deployments_of
from changeflow.incidents import FoundIn, Incident
from changeflow.models import ChangeRequest, Evidence, EvidenceResult, InventoryEntry
from changeflow.render import escape_inline
from changeflow.tested import TestDeployment

__all__ = [
    "Artifact",
    "ArtifactTrace",
    "BuildTrace",
    "EvidenceLine",
    "IncidentLine",
    "Trace",
    "artifacts_named",
    "render_trace",
    "trace_artifacts",
    "trace_markdown",
]

Artifact = tuple[str, str]
"""An artifact: (entry name, sha256)."""


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvidenceLine(_Line):
    """One evidence record about a build's artifact."""

    id: str
    evidence_type_id: str
    tool: str
    result: EvidenceResult
    scope: str


class BuildTrace(_Line):
    """One build that produced the artifact (a CI run), and its evidence."""

    pipeline_run_id: str
    build_number: str
    repository_url: str
    commit_sha: str
    version: str
    provenance: str
    evidence: list[EvidenceLine] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every evidence record of the build passed (none: not passed)."""
        ok = EvidenceResult.success
        return bool(self.evidence) and all(e.result is ok for e in self.evidence)


class IncidentLine(_Line):
    """One incident on the artifact: open, open past its due date (overdue), or closed."""

    id: str
    state: Literal["open", "overdue", "closed"]
    tool: str
    finding_id: str
    severity: str
    due: date
    asset_uri: str
    environments: dict[str, FoundIn] = Field(default_factory=dict)


class ArtifactTrace(_Line):
    """Everything recorded about one artifact."""

    entry: str
    sha256: str
    builds: list[BuildTrace] = Field(default_factory=list)
    deployments: list[TestDeployment] = Field(default_factory=list)
    incidents: list[IncidentLine] = Field(default_factory=list)


class Trace(_Line):
    """The answer to `changeflow trace`: what was asked and each artifact it names."""

    subject: str
    artifacts: list[ArtifactTrace] = Field(default_factory=list)


def artifacts_named(
    subject: str, branches: Mapping[str, Mapping[str, InventoryEntry]], crs: Iterable[ChangeRequest]
) -> list[Artifact]:
    """The artifacts `subject` names: a CR id (its bill of materials), an entry name (each
    sha256 it has on a branch or in one of `crs`) or an artifact uri (an entry's provenance or
    artifact url); none when it names nothing."""
    by_id = {cr.id: cr for cr in crs}
    if subject in by_id:
        return sorted(by_id[subject].bom.items())
    found = {
        (e.name, e.sha256)
        for entries in branches.values()
        for e in entries.values()
        if subject in (e.name, e.provenance, e.artifact)
    }
    found |= {
        (name, sha) for cr in by_id.values() for name, sha in cr.bom.items() if name == subject
    }
    return sorted(found)


def _builds(
    artifact: Artifact,
    branches: Mapping[str, Mapping[str, InventoryEntry]],
    evidence: Mapping[str, list[Evidence]],
) -> list[BuildTrace]:
    name, sha = artifact
    # the same build seen on several branches (promoted) is one build
    entries = {
        (e.pipeline_run_id, e.build_number, e.commit_sha): e
        for entries in branches.values()
        if (e := entries.get(name)) is not None and e.sha256 == sha
    }
    return [
        BuildTrace(
            pipeline_run_id=e.pipeline_run_id,
            build_number=e.build_number,
            repository_url=e.repository_url,
            commit_sha=e.commit_sha,
            version=e.version,
            provenance=e.provenance,
            evidence=[
                EvidenceLine(
                    id=r.id,
                    evidence_type_id=r.evidence_type_id,
                    tool=r.details.tool,
                    result=r.details.result,
                    scope=r.origin.scope,
                )
                for r in sorted(evidence.get(e.provenance, []), key=lambda r: (r.date, r.id))
            ],
        )
        for _, e in sorted(entries.items())
    ]


def _incidents(uris: set[str], incidents: Iterable[Incident], today: date) -> list[IncidentLine]:
    def state(i: Incident) -> Literal["open", "overdue", "closed"]:
        if i.state == "closed":
            return "closed"
        return "overdue" if i.due_in() < today else "open"

    return [
        IncidentLine(
            id=i.id,
            state=state(i),
            tool=i.tool,
            finding_id=i.finding_id,
            severity=i.severity.value,
            due=i.due_in(),
            asset_uri=i.asset_uri,
            environments=i.environments,
        )
        for i in sorted(incidents, key=lambda i: i.id)
        if i.asset_uri in uris
    ]


def trace_artifacts(
    subject: str,
    artifacts: list[Artifact],
    *,
    branches: Mapping[str, Mapping[str, InventoryEntry]],
    evidence: Mapping[str, list[Evidence]],
    crs: Iterable[ChangeRequest],
    results: Mapping[str, EvidenceResult],
    incidents: Iterable[Incident],
    today: date,
) -> Trace:
    """Trace each artifact: its builds with their evidence, its deployments, its incidents.

    Args:
        subject: what was asked (an entry, an artifact uri, a CR id, an environment).
        artifacts: the (entry name, sha256) pairs to trace.
        branches: inventory branch -> its entries (where the builds are read from).
        evidence: asset uri -> the evidence records about it.
        crs: the CRs that deployed the artifacts (`ChangeManagement.deployments`; more do no
            harm: a deployment is a CR whose bill of materials names the bytes).
        results: acceptance evidence id -> result (an id missing counts as failed).
        incidents: every incident.
        today: the day an open incident is judged overdue against.
    """
    crs, incidents = list(crs), list(incidents)
    traced = []
    for name, sha in artifacts:
        builds = _builds((name, sha), branches, evidence)
        # incidents are kept on the artifact, or (older ones) on its application's repository
        uris = {b.provenance for b in builds} | {b.repository_url for b in builds}
        traced.append(
            ArtifactTrace(
                entry=name,
                sha256=sha,
                builds=builds,
                deployments=deployments_of(crs, {name: sha}, dict(results)),
                incidents=_incidents(uris, incidents, today),
            )
        )
    return Trace(subject=subject, artifacts=traced)


def _build_line(b: BuildTrace) -> str:
    failed = [e.evidence_type_id for e in b.evidence if e.result is not EvidenceResult.success]
    verdict = (
        f"passed ({len(b.evidence)} evidence)"
        if b.passed
        else f"FAILED: {', '.join(failed) or 'no evidence'}"
    )
    return f"    {b.pipeline_run_id:<16} build {b.build_number:<6} {b.commit_sha[:12]}  {verdict}"


def render_trace(trace: Trace) -> str:
    """The trace as short tables people read, one block per artifact."""
    if not trace.artifacts:
        return f"{trace.subject}: no artifact recorded"
    blocks = []
    for a in trace.artifacts:
        short = a.sha256.removeprefix("sha256:")[:12]
        lines = [f"{a.entry} @ sha256:{short}", "  builds:"]
        lines += [_build_line(b) for b in a.builds] or ["    none recorded"]
        lines.append("  deployments:")
        lines += [
            f"    {d.environment:<10} {d.region:<10} {d.change_request:<16} {d.outcome:<18} "
            f"acceptance {d.acceptance}"
            for d in a.deployments
        ] or ["    none"]
        lines.append("  incidents:")
        lines += [
            f"    {i.id}  {i.state:<8} {i.tool} {i.finding_id} ({i.severity}) due {i.due}"
            + "".join(f"; {env}: found {f.found}, due {f.due}" for env, f in i.environments.items())
            for i in a.incidents
        ] or ["    none"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def trace_markdown(trace: Trace, title: str) -> str:
    """The trace as Markdown: a heading and `render_trace`'s text as a code block.

    The fence is longer than any run of backticks in the text, so nothing recorded (an entry
    name, a tool's name) can close it and add structure of its own.
    """
    text = render_trace(trace)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"# {escape_inline(title)}\n\n{fence}text\n{text}\n{fence}\n"
