"""The names of inventory labels: what is deployed where."""

from __future__ import annotations

import re

from changeflow.names import REGION_PATTERN

__all__ = ["check_ref_name", "deployed_label", "environment_label", "region_of_label"]

_SUFFIX = "_latest"
_REGION_RE = re.compile(REGION_PATTERN)
# what `git check-ref-format` refuses anywhere in a name
_BAD_REF_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{")


def deployed_label(environment: str, region: str) -> str:
    """The label on what is deployed in one region of an environment: `<region>_<env>_latest`."""
    return f"{region}_{environment}{_SUFFIX}"


def environment_label(environment: str) -> str:
    """The label on what was last deployed anywhere in an environment: `<env>_latest`."""
    return f"{environment}{_SUFFIX}"


def region_of_label(label: str, environment: str) -> str | None:
    """The region a `<region>_<env>_latest` label names, or None for any other label.

    A label read back is checked like one written: one whose region part is not a region name
    (a tag made by hand) names no region.
    """
    suffix = f"_{environment}{_SUFFIX}"
    if label.endswith(suffix) and label != environment_label(environment):
        region = label.removesuffix(suffix)
        return region if region and _REGION_RE.fullmatch(region) else None
    return None


def check_ref_name(name: str) -> str:
    """Check a branch or tag name the way `git check-ref-format` would, without a process.

    Raises:
        ValueError: naming what is wrong with `name`.
    """
    parts = name.split("/")
    if (
        not name
        or _BAD_REF_RE.search(name)
        or name.startswith(("-", "/"))
        or name.endswith(("/", ".", ".lock"))
        or any(not p or p.startswith(".") or p.endswith(".lock") for p in parts)
        or name == "@"
    ):
        raise ValueError(f"not a valid git branch or tag name: {name!r}")
    return name
