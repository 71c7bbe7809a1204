"""The offline audit package: what is in it, its manifest, and the page an auditor opens.

`changeflow audit export` writes one folder (`blocks.audit_export`):

```
manifest.json                     every other file's sha256
manifest.dsse.json                the manifest as a signed in-toto statement (DSSE)
index.html                        the CRs, approvals, evidence and hashes, for a browser
trust.toml, keys/<name>.pub       the trust file and its keys as OpenSSH public keys
history.git.bundle                the change-management repo's branch, signed commits
changes/<CR>.json                 each CR as its branch head holds it
summaries/<CR>.json               the evidence summary each CR names (the stored bytes)
evidence/<id>.json                each evidence record, envelopes/evidence/<id>.json its DSSE
attachments/<sha256>              each attachment's bytes
envelopes/provenance/<sha>.json   the builds' signed provenance the summaries relied on
envelopes/decisions/<CR>.json     each CR's signed decision (SLSA VSA)
checkpoints/<CR>/<sha>.json       each CR's signed checkpoints
```

Every file is reached from a signed root (a signed commit holds the CR, the CR names its
summary's sha256, the summary names each record by id, a record its attachments by sha256), so
`audit verify` re-derives each hash from there; the manifest catches any other change (the page,
a key file). The manifest is itself signed (`manifest_statement`: its files are the subjects) by
a key the trust file lets sign `audit-package`, so rewriting a file and its hash is named too.
Which keys to believe is the auditor's call: `--trust FILE` checks the package against their
own copy of the trust file as well as the one inside.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from changeflow.attestations import STATEMENT_V1
from changeflow.evidence_trust import Opened
from changeflow.models import ChangeRequest, utcnow
from changeflow.summary import EvidenceSummary
from changeflow.trust import TrustPolicy

__all__ = [
    "AUDIT_PACKAGE",
    "MANIFEST",
    "MANIFEST_ENVELOPE",
    "PACKAGE_V1",
    "Manifest",
    "manifest_problems",
    "manifest_statement",
    "render_index",
    "signed_manifest",
]

MANIFEST = "manifest.json"
MANIFEST_ENVELOPE = "manifest.dsse.json"

AUDIT_PACKAGE = "audit-package"
"""What a key signs when it signs an audit package's manifest (the trust file's kind)."""

PACKAGE_V1 = "https://changeflow.dev/audit-package/v1"
"""The predicate of a signed manifest: what was exported, when, and under which trust file."""


class Manifest(BaseModel):
    """What a package holds: its scope, the CRs, the branch head, every file's sha256."""

    version: int = 1
    created: datetime = Field(default_factory=utcnow)
    scope: str = Field(description="What was exported: a CR id, or `<environment>[/<region>]`.")
    change_requests: list[str] = Field(default_factory=list)
    head: str | None = Field(default=None, description="The CR branch head in the bundle.")
    trust_sha256: str | None = None
    files: dict[str, str] = Field(default_factory=dict, description="Path -> sha256.")


def manifest_statement(manifest: Manifest) -> dict[str, Any]:
    """The in-toto statement of a manifest: each file a subject with its sha256."""
    return {
        "_type": STATEMENT_V1,
        "subject": [
            {"name": path, "digest": {"sha256": sha.removeprefix("sha256:")}}
            for path, sha in sorted(manifest.files.items())
        ],
        "predicateType": PACKAGE_V1,
        "predicate": {
            "version": manifest.version,
            "exportedOn": manifest.created.isoformat().replace("+00:00", "Z"),
            "scope": manifest.scope,
            "changeRequests": manifest.change_requests,
            "head": manifest.head,
            "trustFile": manifest.trust_sha256,
        },
    }


def signed_manifest(opened: Opened, trust: TrustPolicy) -> Manifest | str:
    """The manifest an opened envelope carries, when a key `trust` lets sign `audit-package`
    signed it inside its window; else why not (one line)."""
    if opened.problem:
        return opened.problem
    statement = opened.statement
    predicate = statement.get("predicate")
    if statement.get("predicateType") != PACKAGE_V1 or not isinstance(predicate, dict):
        return f"the envelope is not a package manifest ({statement.get('predicateType')!r})"
    try:
        manifest = Manifest(
            version=predicate.get("version"),
            created=predicate.get("exportedOn"),
            scope=predicate.get("scope"),
            change_requests=predicate.get("changeRequests"),
            head=predicate.get("head"),
            trust_sha256=predicate.get("trustFile"),
            files={
                s["name"]: "sha256:" + s["digest"]["sha256"] for s in statement.get("subject", [])
            },
        )
    except (ValidationError, KeyError, TypeError) as exc:
        return f"the signed manifest is malformed: {' '.join(str(exc).split())[:200]}"
    if manifest.created.tzinfo is None:
        return "the signed manifest is malformed: exportedOn carries no time zone"
    return trust.judge(AUDIT_PACKAGE, opened.keyids, manifest.created) or manifest


def manifest_problems(manifest: Manifest, found: dict[str, str]) -> list[str]:
    """Files missing, altered or added since the export (`found`: path -> sha256 on disk)."""
    problems = [
        f"package: {path} is missing" if path not in found else f"package: {path} was altered"
        for path, sha in sorted(manifest.files.items())
        if found.get(path) != sha
    ]
    problems += [
        f"package: {p} is not in the manifest" for p in sorted(set(found) - set(manifest.files))
    ]
    return problems


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1b1b1b;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;width:100%}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:.9em;vertical-align:top}
th{background:#f3f3f3}code{font-size:.85em;word-break:break-all}
.pass{color:#116611;font-weight:bold}.fail{color:#b00020;font-weight:bold}
.ok{background:#e8f5e9;padding:.6em;border-left:4px solid #2e7d32}
.bad{background:#fdecea;padding:.6em;border-left:4px solid #b00020}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _result(value: str) -> str:
    good = value in ("success", "PASSED", "approved", "signed")
    return f'<span class="{"pass" if good else "fail"}">{_e(value)}</span>'


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _cr_section(
    cr: ChangeRequest,
    summary: EvidenceSummary | None,
    signers: dict[str, str],
    decision: str | None,
) -> str:
    close = cr.close_category.value if cr.close_category else "-"
    parts = [
        f"<h2>{_e(cr.id)}: {_e(cr.environment)}/{_e(cr.region)}</h2>",
        _table(
            ["type", "state", "closed", "ready", "decision (signed VSA)", "trust file"],
            [
                [
                    _e(cr.type.value),
                    _e(cr.state.value),
                    _e(close),
                    _result("PASSED" if cr.deployment_ready else "FAILED"),
                    _result(decision) if decision else "none",
                    f"<code>{_e(cr.trust_sha256 or '-')}</code>",
                ]
            ],
        ),
        "<h3>Approvals</h3>",
        _table(
            ["by", "decision", "when", "signed with"],
            [
                [
                    _e(a.by),
                    _result(a.decision),
                    _e(a.date.isoformat(timespec="seconds")),
                    "the readiness policy (automatic)"
                    if a.automatic
                    else (_e(signers.get(a.by, "an SSH key")) if a.signature else "unsigned"),
                ]
                for a in cr.approvals
            ],
        )
        if cr.approvals
        else "<p>none</p>",
        "<h3>Artifacts</h3>",
        _table(["entry", "sha256"], [[_e(n), f"<code>{_e(d)}</code>"] for n, d in cr.bom.items()]),
        f"<p>evidence summary <code>{_e(cr.evidence_summary_sha256 or '-')}</code></p>",
    ]
    if summary is not None:
        parts.append("<h3>Evidence</h3>")
        parts.append(
            _table(
                ["artifact", "type", "result", "record sha256", "signed envelope sha256"],
                [
                    [
                        _e(i.asset_uri),
                        _e(i.evidence_type_id),
                        _result(i.result.value),
                        f"<code>{_e(i.evidence_id)}</code>",
                        f"<code>{_e(i.envelope or 'unsigned')}</code>",
                    ]
                    for i in summary.evidence
                ],
            )
        )
        if summary.untrusted:
            rows = [
                [_e(u.evidence_type_id), _e(u.evidence_id), _e(u.reason)] for u in summary.untrusted
            ]
            parts += ["<h3>Not trusted</h3>", _table(["type", "record", "why"], rows)]
    return "\n".join(parts)


def render_index(
    manifest: Manifest,
    crs: list[ChangeRequest],
    summaries: dict[str, EvidenceSummary],
    decisions: dict[str, str],
    trust: TrustPolicy | None,
    problems: list[str],
) -> str:
    """The package's `index.html`: every CR, who approved it with which key, each piece of
    evidence with its result, and every hash; escaped throughout (the records hold user text).
    """
    signers = {
        a.identity: f"{a.identity}: {a.public_key[:40]}…"
        for cr in crs
        if cr.approval_rule
        for a in cr.approval_rule.approvers
    }
    verdict = (
        f'<p class="bad">{len(problems)} problems when exported:<br>'
        + "<br>".join(_e(p) for p in problems)
        + "</p>"
        if problems
        else '<p class="ok">Every signature and hash verified when exported. '
        "Run <code>changeflow audit verify DIR</code> to check it again, offline.</p>"
    )
    keys = _table(
        ["key", "may sign", "from", "until", "ed25519 public key"],
        [
            [
                _e(k.name),
                _e(", ".join(k.signs)),
                _e(k.not_before.isoformat()),
                _e(k.not_after.isoformat() if k.not_after else "-"),
                f"<code>{_e(k.public)}</code>",
            ]
            for k in (trust.keys if trust else [])
        ],
    )
    files = _table(
        ["file", "sha256"],
        [[_e(p), f"<code>{_e(s)}</code>"] for p, s in sorted(manifest.files.items())],
    )
    body = "\n".join(
        [
            f"<h1>changeflow audit package: {_e(manifest.scope)}</h1>",
            f"<p>exported {_e(manifest.created.isoformat(timespec='seconds'))}; change-request "
            f"history head <code>{_e(manifest.head or '-')}</code></p>",
            verdict,
            *(_cr_section(c, summaries.get(c.id), signers, decisions.get(c.id)) for c in crs),
            f"<h2>Trust file</h2><p><code>{_e(manifest.trust_sha256 or 'none')}</code></p>",
            keys,
            "<h2>Files</h2>",
            files,
        ]
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>changeflow audit: {_e(manifest.scope)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
