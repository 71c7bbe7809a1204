"""Signing keys for a local stack and the demo: a CI key, a deploy key and a trust file.

`changeflow dev up` and `changeflow demo` call `ensure_keys`: it writes `ci.pem` and
`deploy.pem` (ed25519 PKCS#8, 0600) and `trust.toml` once, and returns the variables that point
the pipeline at them. Each key may sign only its own role's kinds (docs/attestations.md).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from blocks.signing import load_trust_file, new_key, public_key
from changeflow.audit_package import AUDIT_PACKAGE
from changeflow.chain import CR_HISTORY
from changeflow.models import utcnow
from changeflow.readiness import DEFAULT_REQUIRED_TYPES, IMMUTABLE_STORAGE
from changeflow.settings import Settings
from changeflow.trust import PROVENANCE, VSA, TrustPolicy, render_trust
from cli.local_stack import write_private

__all__ = ["CI_SIGNS", "DEPLOY_SIGNS", "ensure_keys"]

CI_SIGNS = [*DEFAULT_REQUIRED_TYPES, PROVENANCE]
"""What the CI key may sign: the build's evidence and its provenance."""

DEPLOY_SIGNS = [IMMUTABLE_STORAGE, "com.ibm.acceptance_tests", VSA, CR_HISTORY, AUDIT_PACKAGE]
"""What the deploy key may sign: its storage check, acceptance evidence, CR decisions, the CR
history (its commits and checkpoints) and the manifests of the audit packages it exports."""


def ensure_keys(directory: Path) -> dict[str, str]:
    """The key files and trust file under `directory`, made on first use; their variables.

    Existing files are kept, so a restarted stack still trusts what it signed before.

    Raises:
        BadInput: when an existing key or trust file is not one.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ci, deploy, trust = directory / "ci.pem", directory / "deploy.pem", directory / "trust.toml"
    if not (ci.is_file() and deploy.is_file() and trust.is_file()):
        ci_pem, deploy_pem = new_key(), new_key()
        # a minute back, so a record signed the moment the stack starts is inside the window
        since = utcnow() - timedelta(minutes=1)
        policy = TrustPolicy(
            keys=[
                public_key(ci_pem, name="ci", signs=CI_SIGNS, not_before=since),
                public_key(deploy_pem, name="deploy", signs=DEPLOY_SIGNS, not_before=since),
            ]
        )
        write_private(ci, ci_pem.decode("ascii"))
        write_private(deploy, deploy_pem.decode("ascii"))
        trust.write_text(render_trust(policy), encoding="utf-8")
    env = {
        "CHANGEFLOW_CI_SIGNING_KEY_FILE": str(ci),
        "CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE": str(deploy),
        "CHANGEFLOW_TRUST_FILE": str(trust),
    }
    # fail here, once, rather than in the first flow that signs
    load_trust_file(Settings.from_env(env))
    return env
