"""Reading records back from a store: parse them, and check they are what their key says.

Every adapter applies the same checks, so a record that was overwritten, truncated or swapped
for another is refused the same way wherever it is kept.
"""

from __future__ import annotations

from pydantic import ValidationError

from changeflow.canonical import digest
from changeflow.errors import IntegrityError
from changeflow.models import ChangeRequest, Evidence
from changeflow.summary import EvidenceSummary

__all__ = ["stored_change_request", "stored_evidence", "stored_summary"]


def stored_evidence(evidence_id: str, raw: bytes) -> Evidence:
    """The evidence record stored under `evidence_id`, sealed and hashing to that id.

    Raises:
        IntegrityError: when it does not parse, or is another record than its key names.
    """
    try:
        record = Evidence.model_validate_json(raw)
    except ValueError as exc:
        raise IntegrityError(f"evidence {evidence_id} is not a valid record") from exc
    if record.id != evidence_id or not record.is_sealed():
        raise IntegrityError(f"evidence {evidence_id} does not hash to its id")
    return record


def stored_summary(url: str, body: bytes, expected: str) -> EvidenceSummary:
    """The summary stored at `url`, checked against the sha256 its CR recorded.

    Raises:
        IntegrityError: when its bytes no longer hash to `expected`.
    """
    if digest(body) != expected:
        raise IntegrityError(f"summary {url} does not match {expected}")
    return EvidenceSummary.model_validate_json(body)


def stored_change_request(change_id: str, data: bytes, where: str) -> ChangeRequest:
    """The CR stored as `change_id` (`where` names the place, for the message).

    Raises:
        IntegrityError: when it does not parse, or holds another CR.
    """
    try:
        cr = ChangeRequest.model_validate_json(data)
    except ValidationError as exc:
        raise IntegrityError(
            f"{change_id}{where} is not a change request: {exc.errors()[0]['msg']}"
        ) from None
    if cr.id != change_id:
        raise IntegrityError(f"{change_id}{where} holds {cr.id}")
    return cr
