"""SSH signatures, the way git signs commits (`ssh-keygen -Y`): approvals and the CR history.

Signing uses the person's own key file (`ssh-keygen -Y sign -n changeflow-approval -f KEY`);
verifying checks the signature against one approver's public key, written as an
`allowed_signers` file of that one line (`ssh-keygen -Y verify`). `ssh-keygen` runs with the
allow-listed environment of `blocks.commands`: no agent socket or pipeline credential reaches it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from blocks.commands import command_environment
from blocks.gitrepo import default_cache_dir
from blocks.signing import load_signer
from changeflow.approvals import Verify
from changeflow.approvers import APPROVAL_NAMESPACE, ApprovalRule, Approver, normalize_signature
from changeflow.chain import CR_HISTORY
from changeflow.errors import BadInput
from changeflow.settings import Settings
from changeflow.trust import TrustPolicy

__all__ = [
    "commit_signing_key",
    "history_signers",
    "openssh_public",
    "sign",
    "verifier",
    "verify",
]

_TIMEOUT_S = 30


def _keygen(args: list[str], data: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["ssh-keygen", *args],
            input=data.encode("utf-8"),
            capture_output=True,
            env=command_environment(),
            timeout=_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BadInput("ssh-keygen not found: install OpenSSH to sign approvals") from exc


def sign(key: Path, text: str) -> str:
    """Sign `text` with the SSH private key at `key`; the armored signature.

    Raises:
        BadInput: when the key cannot be read or sign (missing, wrong passphrase, not a key).
    """
    if not key.is_file():
        raise BadInput(f"--key: no key file at {key}")
    done = _keygen(["-Y", "sign", "-n", APPROVAL_NAMESPACE, "-f", str(key)], text)
    if done.returncode != 0 or not done.stdout:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BadInput(f"--key: {key} cannot sign: {why[-1] if why else 'ssh-keygen failed'}")
    return normalize_signature(done.stdout.decode("ascii"))


def verify(approver: Approver, text: str, signature: str) -> bool:
    """Whether `signature` is the approver's key's signature over `text` in the approval
    namespace (a malformed signature does not verify)."""
    try:
        armored = normalize_signature(signature)
    except ValueError:
        return False
    allowed = ApprovalRule(approvers=[approver]).allowed_signers()
    with tempfile.TemporaryDirectory(prefix="changeflow-verify-") as tmp:
        signers, sig = Path(tmp) / "allowed_signers", Path(tmp) / "approval.sig"
        signers.write_text(allowed, "utf-8")
        sig.write_text(armored, "ascii")
        args = ["-Y", "verify", "-f", str(signers), "-I", approver.identity]
        done = _keygen([*args, "-n", APPROVAL_NAMESPACE, "-s", str(sig)], text)
    return done.returncode == 0


def verifier() -> Verify:
    """The signature check the domain's approval rules are given."""
    return verify


# -- git's SSH commit signatures (issue 12: the signed CR history) ---------------------------


def commit_signing_key(settings: Settings | None = None) -> Path | None:
    """The deploy key as an OpenSSH private key file git signs the CR repo's commits with.

    Written once per key under `$CHANGEFLOW_HOME/keys` (folder 0700, file 0600, never in a
    repository); None when no deploy key is configured.

    Raises:
        BadInput: when the configured key cannot be read (`blocks.signing.load_signer`).
    """
    signer = load_signer(settings, role="deploy")
    if signer is None:
        return None
    folder = default_cache_dir().parent / "keys"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"git-{signer.keyid[:32]}"
    if not path.is_file():
        # written aside and renamed: a concurrent writer never sees half a key
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".key-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(signer.openssh_private())
        os.replace(tmp, path)
    return path


def openssh_public(public_hex: str) -> str:
    """An ed25519 public key (hex, as the trust file holds it) as an OpenSSH public key line."""
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def history_signers(trust: TrustPolicy) -> str:
    """An `allowed_signers` file of the keys the trust file lets sign CR history.

    Each key's principal is its keyid, so what git reports (`%GS`) names the trust file's
    entry; its window is judged against the commit date by `changeflow.chain`.
    """
    return "".join(
        f'{key.keyid} namespaces="git" {openssh_public(key.public)}\n'
        for key in trust.signers_of(CR_HISTORY)
    )
