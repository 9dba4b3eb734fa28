"""Request and answer models of ``/api/users`` and ``/api/roles``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from ingest_api.access.schemas import Scope

# Letters, digits and . _ @ - (an e-mail address fits); never "/" (the name is part of the URL).
USERNAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
ROLE_PATTERN = r"^[^/]{1,100}$"
# Passwords are bounded so that hashing one stays cheap whatever a client sends.
MAX_PASSWORD_LENGTH = 256


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    role: str = Field(min_length=1, max_length=100)
    # The password an administrator chose must be changed at first login, unless told otherwise.
    firstLogin: bool = True


class UserPatch(BaseModel):
    """What changes; a new password given by an administrator must be changed at the next login."""

    model_config = ConfigDict(extra="forbid")

    role: str | None = Field(default=None, min_length=1, max_length=100)
    password: str | None = Field(default=None, min_length=1, max_length=MAX_PASSWORD_LENGTH)
    active: bool | None = None
    firstLogin: bool | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currentPassword: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    newPassword: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=ROLE_PATTERN)
    scopes: list[Scope] = Field(min_length=1)


class RolePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[Scope] = Field(min_length=1)


# Answers (TypedDicts: see ingest_api.shared)


@with_config(ConfigDict(extra="forbid"))
class User(TypedDict):
    """A user as listed: never the password or its hash."""

    username: str
    role: str
    scopes: list[Scope]
    firstLogin: bool
    active: bool
    createdAt: datetime
    updatedAt: datetime
    passwordChangedAt: datetime
    lastLoginAt: datetime | None


@with_config(ConfigDict(extra="forbid"))
class Role(TypedDict):
    """A named set of scopes; the built-in ones (Admin, Read-only) cannot change."""

    name: str
    scopes: list[Scope]
    builtin: bool
    users: int
    createdAt: datetime
    updatedAt: datetime
