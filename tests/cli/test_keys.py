"""The keys `dev up` and the demo make: one per role, 0600, and a trust file that keeps each
key to its own role's kinds."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from blocks.signing import load_signer, load_trust_file
from changeflow.errors import BadInput
from changeflow.models import utcnow
from changeflow.settings import Settings
from cli.keys import CI_SIGNS, DEPLOY_SIGNS, ensure_keys


def test_each_role_gets_its_own_private_key_and_may_sign_only_its_kinds(tmp_path: Path) -> None:
    env = ensure_keys(tmp_path / "keys")
    for name in ("ci.pem", "deploy.pem"):
        assert stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode) == 0o600
    settings = Settings.from_env(env)
    ci, deploy = load_signer(settings, role="ci"), load_signer(settings, role="deploy")
    assert ci is not None and deploy is not None and ci.keyid != deploy.keyid
    trust = load_trust_file(settings)
    assert trust is not None
    now = utcnow()
    for kind in CI_SIGNS:
        assert trust.policy.judge(kind, {ci.keyid}, now) is None
        assert "may not sign" in (trust.policy.judge(kind, {deploy.keyid}, now) or "")
    for kind in DEPLOY_SIGNS:
        assert trust.policy.judge(kind, {deploy.keyid}, now) is None
        assert "may not sign" in (trust.policy.judge(kind, {ci.keyid}, now) or "")
    # a restarted stack keeps its keys: what it signed before still verifies
    assert ensure_keys(tmp_path / "keys") == env
    again = load_signer(Settings.from_env(env), role="ci")
    assert again is not None and again.keyid == ci.keyid


def test_a_role_without_a_key_of_its_own_falls_back_to_the_shared_key(tmp_path: Path) -> None:
    env = ensure_keys(tmp_path)
    shared = {"CHANGEFLOW_SIGNING_KEY_FILE": env["CHANGEFLOW_CI_SIGNING_KEY_FILE"]}
    deploy = load_signer(Settings.from_env(shared), role="deploy")
    ci = load_signer(Settings.from_env(env), role="ci")
    assert deploy is not None and ci is not None and deploy.keyid == ci.keyid
    assert load_signer(Settings.from_env({}), role="deploy") is None


def test_a_missing_role_key_file_is_named(tmp_path: Path) -> None:
    env = {"CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE": str(tmp_path / "nope.pem")}
    with pytest.raises(BadInput, match="CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE: no such file"):
        load_signer(Settings.from_env(env), role="deploy")
