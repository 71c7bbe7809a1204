"""The names of inventory labels: what is deployed where."""

from __future__ import annotations

__all__ = ["deployed_label", "environment_label", "region_of_label"]

_SUFFIX = "_latest"


def deployed_label(environment: str, region: str) -> str:
    """The label on what is deployed in one region of an environment: `<region>_<env>_latest`."""
    return f"{region}_{environment}{_SUFFIX}"


def environment_label(environment: str) -> str:
    """The label on what was last deployed anywhere in an environment: `<env>_latest`."""
    return f"{environment}{_SUFFIX}"


def region_of_label(label: str, environment: str) -> str | None:
    """The region a `<region>_<env>_latest` label names, or None for any other label."""
    suffix = f"_{environment}{_SUFFIX}"
    if label.endswith(suffix) and label != environment_label(environment):
        return label.removesuffix(suffix) or None
    return None
