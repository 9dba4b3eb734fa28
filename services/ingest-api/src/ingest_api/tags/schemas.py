"""Request bodies and answers of ``/api/cte/tags``."""

from __future__ import annotations

from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

# Whether a tag is on none, some or all of the indicators a filter matches (the reference's appliedOn).
AppliedOn: TypeAlias = Literal["none", "some", "all"]


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=500)
    color: str = Field(default="#969696", pattern=r"^#[0-9A-Fa-f]{6}$")


class TagName(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=500)


class TagOut(BaseModel):
    """A tag, and whether it is on none, some or all of the indicators the listing's filter matches."""

    name: str
    color: str
    appliedOn: AppliedOn
