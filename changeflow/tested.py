"""The record of one test deployment: an artifact deployed under a CR, and how it went."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from changeflow.canonical import DIGEST_PATTERN

__all__ = ["TestDeployment"]


class TestDeployment(BaseModel):
    """One deployment of an artifact (an entry at one sha256) under a CR, and how it went.

    Kept on the CR of a later environment, so whoever approves it sees where the same bytes
    were deployed before and whether their acceptance tests passed there.
    """

    __test__ = False  # a record, not a pytest test class, whatever its name says
    model_config = ConfigDict(extra="forbid")

    entry: str
    sha256: str = Field(pattern=DIGEST_PATTERN)
    environment: str
    region: str
    change_request: str
    outcome: str = Field(description="The CR's close category, else its state.")
    acceptance: Literal["passed", "failed", "none"] = "none"
