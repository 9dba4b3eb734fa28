"""Routes of ``/api/users`` and ``/api/roles`` (Settings > Users), and the first administrator.

Passwords are argon2 hashes (hashed and verified in a thread: argon2 is slow on purpose). Deleting or
deactivating a user revokes the user's API tokens. The last active user who may manage users (a role
with settings_write) cannot be deleted, deactivated or given a role without it, nor can the role of
such last users lose the scope: nobody could manage users any more.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from ingest_api.access import repository as access_repository
from ingest_api.access.domain import LOCK_MINUTES, MAX_FAILED_SIGNINS, hash_secret, user_subject, verify_secret
from ingest_api.audit.handlers import record_event
from ingest_api.shared import WRITE_ERRORS, AppState, Empty, Me, SettingsReader, SettingsWriter, State
from ingest_api.users import repository
from ingest_api.users.domain import (
    ADMIN_ROLE,
    MANAGING_SCOPE,
    RESERVED_USERNAMES,
    password_problems,
    policy_message,
    role_out,
    user_out,
)
from ingest_api.users.schemas import (
    ROLE_PATTERN,
    USERNAME_PATTERN,
    PasswordChange,
    Role,
    RoleIn,
    RolePatch,
    User,
    UserIn,
    UserPatch,
)

log = logging.getLogger(__name__)

users_router = APIRouter(prefix="/users", tags=["Users"], responses=WRITE_ERRORS)
roles_router = APIRouter(prefix="/roles", tags=["Users"], responses=WRITE_ERRORS)

Username = Annotated[str, Path(pattern=USERNAME_PATTERN)]
RoleName = Annotated[str, Path(pattern=ROLE_PATTERN)]


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def _no_user(username: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"User with username='{username}' does not exist.")


def _check_password(password: str, username: str) -> None:
    problems = password_problems(password, username)
    if problems:
        raise _unprocessable(policy_message(problems))


LAST_MANAGER = "at least one active user must keep a role with settings_write (to manage users)"


async def _keeps_a_manager(conn: object, before: int) -> None:
    """Refuse (409, the transaction rolls back) a change that left nobody able to manage users."""
    if before and not await repository.managers(conn, MANAGING_SCOPE):  # type: ignore[arg-type]
        raise HTTPException(status.HTTP_409_CONFLICT, LAST_MANAGER)


# One's own profile and password (scope me: all a user whose password must change may do)


@users_router.get("/me", summary="The signed-in user")
async def get_me(state: State, claims: Me) -> User:
    if claims.owner is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This token belongs to no user.")
    async with state.pool.acquire() as conn:
        row = await repository.get_user(conn, claims.owner)
    if row is None:
        raise _no_user(claims.owner)
    return user_out(row)


@users_router.post("/me/password", summary="Change one's own password (required at first login)")
async def change_my_password(state: State, change: PasswordChange, claims: Me) -> User:
    """A wrong current password counts as a failed sign-in of the user (and locks the same way)."""
    if claims.kind != "user" or claims.owner is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only a user signed in with a password can change it.")
    username = claims.owner
    async with state.pool.acquire() as conn:
        row = await repository.get_user(conn, username)
        locked = await access_repository.subject_lock(conn, [user_subject(username)])
    if row is None:
        raise _no_user(username)
    if locked is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "This account has been locked. Try again later.")
    if not await asyncio.to_thread(verify_secret, row["password_hash"], change.currentPassword):
        async with state.pool.acquire() as conn:
            await access_repository.subject_failed(conn, user_subject(username), MAX_FAILED_SIGNINS, LOCK_MINUTES, None)
        raise _unprocessable("currentPassword: not the current password")
    if change.newPassword == change.currentPassword:
        raise _unprocessable("newPassword: must differ from the current password")
    _check_password(change.newPassword, username)
    new_hash = await asyncio.to_thread(hash_secret, change.newPassword)
    async with state.pool.acquire() as conn:
        updated = await repository.update_user(conn, username, {"password_hash": new_hash, "first_login": False})
    if updated is None:
        raise _no_user(username)
    state.forget("user", username)
    return user_out(updated)


# Users (settings_read to read, settings_write to change)


@users_router.get("", summary="List users")
async def list_users(state: State, _: SettingsReader) -> list[User]:
    async with state.pool.acquire() as conn:
        return [user_out(r) for r in await repository.list_users(conn)]


@users_router.post("", status_code=status.HTTP_201_CREATED, summary="Add a user")
async def create_user(state: State, user: UserIn, _: SettingsWriter) -> User:
    if user.username.lower() in RESERVED_USERNAMES:
        raise _unprocessable(f"username: '{user.username}' is reserved")
    _check_password(user.password, user.username)
    password_hash = await asyncio.to_thread(hash_secret, user.password)
    async with state.pool.acquire() as conn, conn.transaction():
        if await repository.get_role(conn, user.role) is None:
            raise _unprocessable(f"role: Role with name='{user.role}' does not exist.")
        row = await repository.insert_user(conn, user.username, password_hash, user.role, user.firstLogin)
    if row is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"User with username='{user.username}' already exists.")
    state.forget("user", user.username)  # a name deleted moments ago may be remembered as unusable
    return user_out(row)


@users_router.get("/{name}", summary="Get a user")
async def get_user(state: State, name: Username, _: SettingsReader) -> User:
    async with state.pool.acquire() as conn:
        row = await repository.get_user(conn, name)
    if row is None:
        raise _no_user(name)
    return user_out(row)


@users_router.patch("/{name}", summary="Change a user's role, password or state")
async def update_user(state: State, name: Username, patch: UserPatch, _: SettingsWriter) -> User:
    """A password set here must be changed at the user's next login (unless firstLogin is false)."""
    changes: dict[str, object] = {}
    if patch.password is not None:
        _check_password(patch.password, name)
        changes["password_hash"] = await asyncio.to_thread(hash_secret, patch.password)
        changes["first_login"] = True
    if patch.firstLogin is not None:
        changes["first_login"] = patch.firstLogin
    if patch.role is not None:
        changes["role"] = patch.role
    if patch.active is not None:
        changes["active"] = patch.active
    revoked: list[str] = []
    async with state.pool.acquire() as conn, conn.transaction():
        if patch.role is not None and await repository.get_role(conn, patch.role) is None:
            raise _unprocessable(f"role: Role with name='{patch.role}' does not exist.")
        before = await repository.managers(conn, MANAGING_SCOPE)
        row = await repository.update_user(conn, name, changes)
        if row is None:
            raise _no_user(name)
        await _keeps_a_manager(conn, before)
        if patch.active is False:
            revoked = await access_repository.revoke_clients_of(conn, name)
    for client_id in revoked:
        state.forget("client", client_id)
    state.forget("user", name)
    return user_out(row)


@users_router.delete("/{name}", summary="Delete a user and revoke the user's API tokens")
async def delete_user(state: State, name: Username, _: SettingsWriter) -> Empty:
    async with state.pool.acquire() as conn, conn.transaction():
        before = await repository.managers(conn, MANAGING_SCOPE)
        revoked = await access_repository.revoke_clients_of(conn, name)
        if not await repository.delete_user(conn, name):
            raise _no_user(name)
        await _keeps_a_manager(conn, before)
    for client_id in revoked:
        state.forget("client", client_id)
    state.forget("user", name)
    return {}


# Roles


@roles_router.get("", summary="List roles (Admin, Read-only and custom sets of scopes)")
async def list_roles(state: State, _: SettingsReader) -> list[Role]:
    async with state.pool.acquire() as conn:
        return [role_out(r) for r in await repository.list_roles(conn)]


@roles_router.post("", status_code=status.HTTP_201_CREATED, summary="Add a role: a named set of scopes")
async def create_role(state: State, role: RoleIn, _: SettingsWriter) -> Role:
    async with state.pool.acquire() as conn:
        row = await repository.insert_role(conn, role.name, list(dict.fromkeys(role.scopes)))
    if row is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"Role with name='{role.name}' already exists.")
    return role_out(row)


@roles_router.get("/{name}", summary="Get a role")
async def get_role(state: State, name: RoleName, _: SettingsReader) -> Role:
    async with state.pool.acquire() as conn:
        row = await repository.get_role(conn, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Role with name='{name}' does not exist.")
    return role_out(row)


@roles_router.patch("/{name}", summary="Change a custom role's scopes (its users' tokens follow within seconds)")
async def update_role(state: State, name: RoleName, patch: RolePatch, _: SettingsWriter) -> Role:
    async with state.pool.acquire() as conn, conn.transaction():
        existing = await repository.get_role(conn, name)
        if existing is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Role with name='{name}' does not exist.")
        if existing["builtin"]:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Role '{name}' is built in and cannot change.")
        before = await repository.managers(conn, MANAGING_SCOPE)
        row = await repository.update_role(conn, name, list(dict.fromkeys(patch.scopes)))
        await _keeps_a_manager(conn, before)
    assert row is not None
    return role_out(row)


@roles_router.delete("/{name}", summary="Delete a custom role that no user has")
async def delete_role(state: State, name: RoleName, _: SettingsWriter) -> Empty:
    async with state.pool.acquire() as conn:
        existing = await repository.get_role(conn, name)
        if existing is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Role with name='{name}' does not exist.")
        if not await repository.delete_role(conn, name):
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"Role '{name}' is built in or still has users, and cannot be deleted."
            )
    return {}


async def bootstrap_admin(state: AppState) -> None:
    """The first administrator from CTE_BOOTSTRAP_ADMIN_USERNAME/PASSWORD, while no user exists; the
    password must be changed at first login, so the one in the environment stops working then."""
    s = state.settings
    if not s.bootstrap_admin_username or s.bootstrap_admin_password is None:
        return
    password = s.bootstrap_admin_password.get_secret_value()
    async with state.pool.acquire() as conn:
        if await repository.any_user(conn):
            return
        password_hash = await asyncio.to_thread(hash_secret, password)
        created = await repository.insert_first_user(conn, s.bootstrap_admin_username, password_hash, ADMIN_ROLE)
    if created:
        log.info("bootstrap administrator created", extra={"username": s.bootstrap_admin_username})
        # Made by no request: recorded here, by the system, from no address.
        await record_event(
            state, actor="system", action="POST", resource="/api/users", target=s.bootstrap_admin_username
        )
