"""Request bodies of ``/api/cte/tags``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=500)
    color: str = Field(default="#969696", pattern=r"^#[0-9A-Fa-f]{6}$")


class TagName(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=500)
