"""Signing and opening DSSE envelopes of in-toto statements, with securesystemslib.

No cryptography is written here: keys, signatures and the DSSE pre-authentication encoding are
securesystemslib's (`dsse.Envelope`, `CryptoSigner`, `SSlibKey`). The pipeline's ed25519 key
comes from a PEM file (`CHANGEFLOW_SIGNING_KEY_FILE`, or per role `CHANGEFLOW_CI_SIGNING_KEY_FILE`
and `CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE`) or a Prefect Secret block
(`CHANGEFLOW_SIGNING_KEY_SECRET`); the trust file from `CHANGEFLOW_TRUST_FILE`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError

# the package re-exports these without an __all__, which strict mypy does not follow
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

from changeflow.attestations import PAYLOAD_TYPE, STATEMENT_V1
from changeflow.canonical import canonical_json, digest
from changeflow.errors import BadInput
from changeflow.evidence_trust import Opened
from changeflow.settings import Settings
from changeflow.trust import TrustedKey, TrustPolicy, load_trust, trust_digest

__all__ = [
    "SigningRole",
    "StatementSigner",
    "Trust",
    "load_signer",
    "load_trust_file",
    "new_key",
    "open_envelope",
    "public_key",
]


class StatementSigner:
    """Signs in-toto statements into DSSE envelopes with one ed25519 key.

    Args:
        private_pem: the PKCS#8 PEM of an ed25519 private key.

    Raises:
        BadInput: when the PEM is not an unencrypted ed25519 private key.
    """

    def __init__(self, private_pem: bytes) -> None:
        try:
            key = serialization.load_pem_private_key(private_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise BadInput(f"signing key is not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise BadInput("signing key is not an ed25519 key")
        self._key = key
        self._signer = CryptoSigner(key)

    @property
    def keyid(self) -> str:
        """The securesystemslib keyid of the public key."""
        return str(self._signer.public_key.keyid)

    @property
    def public(self) -> str:
        """The ed25519 public key, hex."""
        return str(self._signer.public_key.keyval["public"])

    def openssh_private(self) -> bytes:
        """The same key as an OpenSSH private key file (what git's SSH signing reads)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )

    def sign(self, statement: dict[str, Any]) -> bytes:
        """The statement in a signed DSSE envelope, as canonical JSON bytes."""
        envelope = Envelope(canonical_json(statement), PAYLOAD_TYPE, {})
        envelope.sign(self._signer)
        return canonical_json(envelope.to_dict())


def new_key() -> bytes:
    """A new ed25519 private key, as unencrypted PKCS#8 PEM (what `dev up` writes, 0600)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key(
    private_pem: bytes,
    *,
    name: str,
    signs: list[str],
    not_before: datetime,
    not_after: datetime | None = None,
) -> TrustedKey:
    """The trust file's entry for a private key."""
    signer = StatementSigner(private_pem)
    return TrustedKey(
        name=name,
        keyid=signer.keyid,
        public=signer.public,
        signs=signs,
        not_before=not_before,
        not_after=not_after,
    )


def _sslib_key(key: TrustedKey) -> SSlibKey:
    return SSlibKey(key.keyid, "ed25519", key.scheme, {"public": key.public})


def open_envelope(data: bytes, trust: TrustPolicy) -> Opened:
    """Parse an envelope and find which of the trust file's keys signed it.

    Never raises for what the bytes hold: a malformed envelope comes back with its problem.
    """
    found = Opened(digest=digest(data))
    try:
        envelope = Envelope.from_dict(json.loads(data))
        statement = json.loads(envelope.payload)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return found.model_copy(update={"problem": f"envelope is malformed: {exc}"})
    if envelope.payload_type != PAYLOAD_TYPE:
        return found.model_copy(update={"problem": f"payload is {envelope.payload_type!r}"})
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_V1:
        return found.model_copy(update={"problem": "payload is not an in-toto Statement v1"})
    keyids: set[str] = set()
    for key in trust.keys:
        try:
            envelope.verify([_sslib_key(key)], 1)
        except VerificationError:
            continue
        keyids.add(key.keyid)
    return found.model_copy(update={"statement": statement, "keyids": keyids})


SigningRole = Literal["ci", "deploy"]
"""Who signs: CI (its evidence, provenance) or the deploy worker (its checks, decisions)."""


def load_signer(
    settings: Settings | None = None, role: SigningRole | None = None
) -> StatementSigner | None:
    """The pipeline's signing key for `role` from the settings; None when none is configured.

    `CHANGEFLOW_CI_SIGNING_KEY_FILE` / `CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE` name each role's
    key; a role without one (or no role) falls back to `CHANGEFLOW_SIGNING_KEY_FILE`, then to
    the Secret block `CHANGEFLOW_SIGNING_KEY_SECRET` names.

    Raises:
        BadInput: when the key file or Secret block is missing or holds no ed25519 key.
    """
    settings = settings or Settings.from_env()
    own = {"ci": settings.ci_signing_key_file, "deploy": settings.deploy_signing_key_file}
    role_file = own[role] if role is not None else None
    if role is not None and role_file is not None:
        return _read_key(role_file, f"CHANGEFLOW_{role.upper()}_SIGNING_KEY_FILE")
    if settings.signing_key_file is not None:
        return _read_key(settings.signing_key_file, "CHANGEFLOW_SIGNING_KEY_FILE")
    if settings.signing_key_secret:
        from blocks.secrets import load_secrets

        pem = load_secrets({"CHANGEFLOW_SIGNING_KEY_SECRET": settings.signing_key_secret})
        return StatementSigner(pem["CHANGEFLOW_SIGNING_KEY_SECRET"].encode("utf-8"))
    return None


def _read_key(path: Path, variable: str) -> StatementSigner:
    path = path.expanduser()
    if not path.is_file():
        raise BadInput(f"{variable}: no such file: {path}")
    return StatementSigner(path.read_bytes())


class Trust:
    """A parsed trust file and its sha256 (recorded on every CR).

    Attributes:
        policy: the keys and what each may sign.
        sha256: `sha256:<hex>` of the file's bytes.
    """

    def __init__(self, data: bytes) -> None:
        self.policy = load_trust(data)
        self.sha256 = trust_digest(data)


def load_trust_file(settings: Settings | None = None) -> Trust | None:
    """The trust file the settings name; None when none is configured.

    Raises:
        BadInput: when it is missing or not a trust file.
    """
    settings = settings or Settings.from_env()
    if settings.trust_file is None:
        return None
    path = settings.trust_file.expanduser()
    if not path.is_file():
        raise BadInput(f"CHANGEFLOW_TRUST_FILE: no such file: {path}")
    return Trust(path.read_bytes())
