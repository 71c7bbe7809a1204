"""SSH signatures of approval statements, the way git signs commits: `ssh-keygen -Y`.

Signing uses the person's own key file (`ssh-keygen -Y sign -n changeflow-approval -f KEY`);
verifying checks the signature against one approver's public key, written as an
`allowed_signers` file of that one line (`ssh-keygen -Y verify`). `ssh-keygen` runs with the
allow-listed environment of `blocks.commands`: no agent socket or pipeline credential reaches it.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from blocks.commands import command_environment
from changeflow.approvals import Verify
from changeflow.approvers import APPROVAL_NAMESPACE, ApprovalRule, Approver, normalize_signature
from changeflow.errors import BadInput

__all__ = ["sign", "verifier", "verify"]

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
