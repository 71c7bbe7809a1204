"""Signed checkpoints of the CR history in the locker: write-once, under Object Lock.

After each write to a CR in the git change-management repo, the CR's head commit is signed
with the deploy key (an in-toto statement, `changeflow.chain.checkpoint_statement`, in a DSSE
envelope) and stored at `raw/checkpoints/<CR>/<sha256 of envelope>.json`, beside the other
envelopes. The history is in git, which whoever can push may rewrite; the checkpoints are not:
`verify` names every checkpointed commit the current history no longer contains.
"""

from __future__ import annotations

from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.gitrepo import redact
from blocks.memory.evidence import MemoryEvidenceStore
from blocks.signing import StatementSigner, load_signer, open_envelope
from changeflow.canonical import digest, digest_hex
from changeflow.chain import Checkpoint, checkpoint_of, checkpoint_statement
from changeflow.errors import BadInput
from changeflow.models import utcnow
from changeflow.ports import ChangeManagement, EvidenceStore
from changeflow.trust import TrustPolicy

__all__ = ["Checkpoints", "record_checkpoint"]

_DSSE = "application/vnd.dsse.envelope.v1+json"


class Checkpoints:
    """The checkpoints one evidence store keeps (the S3 locker or its in-memory twin).

    Raises:
        BadInput: for a store that keeps none.
    """

    def __init__(self, evidence: EvidenceStore) -> None:
        if not isinstance(evidence, EvidenceLocker | MemoryEvidenceStore):
            raise BadInput(f"{type(evidence).__name__} keeps no CR checkpoints")
        self.evidence = evidence

    def _prefix(self, cr_id: str) -> str:
        if isinstance(self.evidence, EvidenceLocker):
            return self.evidence.key("raw/checkpoints", cr_id) + "/"
        return f"checkpoints/{cr_id}/"

    def put(self, cr_id: str, envelope: bytes) -> str:
        """Store one checkpoint envelope of a CR (write-once); its key."""
        key = self._prefix(cr_id) + digest_hex(digest(envelope)) + ".json"
        if isinstance(self.evidence, EvidenceLocker):
            # the locker's own writes: Object Lock retention, If-None-Match, a checksum
            self.evidence._objects().put_once(key, envelope, content_type=_DSSE)
        else:
            self.evidence._put_once(key, envelope)
        return key

    def envelopes(self, cr_id: str) -> list[bytes]:
        """Every checkpoint envelope stored for a CR, in key order."""
        prefix = self._prefix(cr_id)
        if isinstance(self.evidence, EvidenceLocker):
            objects = self.evidence._objects()
            return [objects.get(k) for k in sorted(objects.list(prefix))]
        with self.evidence._lock:
            held = dict(self.evidence._objects)
        return [held[k] for k in sorted(held) if k.startswith(prefix)]

    def opened(self, cr_id: str, trust: TrustPolicy) -> list[Checkpoint | str]:
        """Each checkpoint of a CR with the trust file's keys that signed it, or its problem."""
        return [checkpoint_of(open_envelope(e, trust)) for e in self.envelopes(cr_id)]


def record_checkpoint(
    changes: ChangeManagement,
    evidence: EvidenceStore,
    cr_id: str,
    signer: StatementSigner | None = None,
) -> str | None:
    """Checkpoint a CR's head commit, signed by the deploy key; the key it is stored at.

    Nothing is written (None) for a backend without git history (ServiceNow, memory) or when
    no deploy key is configured: the next write by a process that has one covers it, since a
    checkpoint vouches for every commit before it.
    """
    if not isinstance(changes, GitChangeManagement):
        return None
    signer = signer or load_signer(role="deploy")
    if signer is None:
        return None
    history = changes.history(cr_id)
    if not history:
        return None
    statement = checkpoint_statement(
        cr_id, history[0].commit, f"git+{redact(changes.remote_url)}", utcnow()
    )
    return Checkpoints(evidence).put(cr_id, signer.sign(statement))
