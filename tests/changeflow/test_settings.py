"""Settings from CHANGEFLOW_* variables: defaults, blanks, an explicit mapping, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from changeflow.errors import BadInput
from changeflow.settings import Settings

FULL = {
    "CHANGEFLOW_S3_ENDPOINT": "http://127.0.0.1:8333",
    "CHANGEFLOW_S3_BUCKET": "evidence",
    "CHANGEFLOW_S3_PREFIX": "/team-a/",
    "CHANGEFLOW_S3_ACCESS_KEY": "AKIA-TEST",
    "CHANGEFLOW_S3_SECRET_KEY": "very-secret",
    "CHANGEFLOW_S3_REGION": "eu-de",
    "CHANGEFLOW_INVENTORY_URL": "file:///srv/inventory.git",
    "CHANGEFLOW_CHANGE_REPO_URL": "file:///srv/changes.git",
    "CHANGEFLOW_ENVIRONMENTS": "environments.toml",
    "CHANGEFLOW_HOME": "~/cf-home",
}


def test_every_variable_reaches_its_setting() -> None:
    settings = Settings.from_env(FULL)
    assert settings.s3_endpoint == "http://127.0.0.1:8333"
    assert settings.s3_bucket == "evidence"
    assert settings.s3_prefix == "team-a"  # slashes around it do not make another prefix
    assert settings.s3_access_key is not None
    assert settings.s3_access_key.get_secret_value() == "AKIA-TEST"
    assert settings.s3_secret_key is not None
    assert settings.s3_secret_key.get_secret_value() == "very-secret"
    assert settings.s3_region == "eu-de"
    assert settings.inventory_url == "file:///srv/inventory.git"
    assert settings.change_repo_url == "file:///srv/changes.git"
    assert settings.environments_file == "environments.toml"
    assert settings.home == Path("~/cf-home").expanduser()


def test_credentials_never_show() -> None:
    settings = Settings.from_env(FULL)
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "very-secret" not in shown
    assert "AKIA-TEST" not in shown


def test_defaults_and_blank_variables_count_as_unset() -> None:
    blank = {name: "  " for name in FULL}
    for settings in (Settings.from_env({}), Settings.from_env(blank)):
        assert settings.s3_endpoint is None
        assert settings.s3_bucket is None
        assert settings.s3_prefix == ""
        assert settings.s3_access_key is None
        assert settings.s3_region == "us-east-1"
        assert settings.environments_file is None
        assert settings.home == Path("~/.changeflow").expanduser()


def test_values_are_trimmed() -> None:
    settings = Settings.from_env({"CHANGEFLOW_S3_BUCKET": " evidence\n"})
    assert settings.s3_bucket == "evidence"


def test_an_explicit_mapping_is_all_that_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGEFLOW_S3_BUCKET", "from-the-process")
    monkeypatch.setenv("CHANGEFLOW_INVENTORY_URL", "file:///process/inventory.git")
    settings = Settings.from_env({"CHANGEFLOW_S3_BUCKET": "from-the-mapping"})
    assert settings.s3_bucket == "from-the-mapping"
    assert settings.inventory_url is None
    assert Settings.from_env().s3_bucket == "from-the-process"
    assert Settings().inventory_url == "file:///process/inventory.git"


def test_other_changeflow_variables_are_not_settings() -> None:
    # the deploy command's own variables share the prefix
    env = {
        "CHANGEFLOW_REGION": "eu",
        "CHANGEFLOW_CHANGE_REQUEST": "CHG1",
        "CHANGEFLOW_S3_BUCKET": "b",
    }
    assert Settings.from_env(env).s3_bucket == "b"


@pytest.mark.parametrize("endpoint", ["localhost:8333", "ftp://host/", "http://"])
def test_an_endpoint_that_is_not_a_url_is_bad_input(endpoint: str) -> None:
    with pytest.raises(BadInput, match=r"^CHANGEFLOW_S3_ENDPOINT: .* is not an http\(s\) URL$"):
        Settings.from_env({"CHANGEFLOW_S3_ENDPOINT": endpoint})


def test_require_names_the_variable_to_set() -> None:
    settings = Settings.from_env({"CHANGEFLOW_S3_BUCKET": "b"})
    assert settings.require("s3_bucket") == "b"
    with pytest.raises(BadInput, match=r"CHANGEFLOW_INVENTORY_URL is not set .*dev up"):
        settings.require("inventory_url")
