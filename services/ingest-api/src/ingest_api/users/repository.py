"""SQL of users and roles (the ingest-api owns them)."""

from __future__ import annotations

from typing import Any

import asyncpg

from cte_common.db import Connection

_USER = """
    SELECT u.username, u.password_hash, u.role, r.scopes, u.first_login, u.active, u.created_at, u.updated_at,
           u.password_changed_at, u.last_login_at
    FROM users u JOIN roles r ON r.name = u.role
"""


async def get_user(conn: Connection, username: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(f"{_USER} WHERE u.username = $1", username)
    return row


async def list_users(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(f"{_USER} ORDER BY u.username"))


async def any_user(conn: Connection) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"))


async def insert_user(
    conn: Connection, username: str, password_hash: str, role: str, first_login: bool
) -> asyncpg.Record | None:
    """The new user, or None if the name is taken."""
    inserted = await conn.fetchval(
        """
        INSERT INTO users (username, password_hash, role, first_login) VALUES ($1, $2, $3, $4)
        ON CONFLICT (username) DO NOTHING RETURNING username
        """,
        username,
        password_hash,
        role,
        first_login,
    )
    return await get_user(conn, username) if inserted else None


async def insert_first_user(conn: Connection, username: str, password_hash: str, role: str) -> bool:
    """Create the user only while no user exists (several replicas may start at once)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO users (username, password_hash, role, first_login)
        SELECT $1, $2, $3, true WHERE NOT EXISTS (SELECT 1 FROM users)
        ON CONFLICT (username) DO NOTHING RETURNING username
        """,
        username,
        password_hash,
        role,
    )
    return inserted is not None


async def update_user(conn: Connection, username: str, changes: dict[str, Any]) -> asyncpg.Record | None:
    """Apply ``changes`` (role, password_hash, active, first_login; absent keys stay); the user, or None."""
    updated = await conn.fetchval(
        """
        UPDATE users SET
            role = coalesce($2, role),
            password_hash = coalesce($3, password_hash),
            password_changed_at = CASE WHEN $3::text IS NULL THEN password_changed_at ELSE now() END,
            active = coalesce($4, active),
            first_login = coalesce($5, first_login),
            updated_at = now()
        WHERE username = $1 RETURNING username
        """,
        username,
        changes.get("role"),
        changes.get("password_hash"),
        changes.get("active"),
        changes.get("first_login"),
    )
    return await get_user(conn, username) if updated else None


async def delete_user(conn: Connection, username: str) -> bool:
    status = await conn.execute("DELETE FROM users WHERE username = $1", username)
    return bool(status.endswith(" 1"))


async def logged_in(conn: Connection, username: str) -> None:
    await conn.execute("UPDATE users SET last_login_at = now() WHERE username = $1", username)


async def managers(conn: Connection, scope: str) -> int:
    """How many active users may manage users (their role holds ``scope``)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM users u JOIN roles r ON r.name = u.role WHERE u.active AND $1 = ANY(r.scopes)", scope
    )
    return count


async def user_access(conn: Connection, username: str) -> asyncpg.Record | None:
    """What a user's token may do now: active, first_login, the role's scopes, when the user was made."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        SELECT u.active, u.first_login, r.scopes, u.created_at
        FROM users u JOIN roles r ON r.name = u.role WHERE u.username = $1
        """,
        username,
    )
    return row


# Roles

_ROLE = """
    SELECT r.name, r.scopes, r.builtin, r.created_at, r.updated_at,
           (SELECT count(*) FROM users u WHERE u.role = r.name) AS users
    FROM roles r
"""


async def get_role(conn: Connection, name: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(f"{_ROLE} WHERE r.name = $1", name)
    return row


async def list_roles(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(f"{_ROLE} ORDER BY r.builtin DESC, r.name"))


async def insert_role(conn: Connection, name: str, scopes: list[str]) -> asyncpg.Record | None:
    inserted = await conn.fetchval(
        "INSERT INTO roles (name, scopes) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING name", name, scopes
    )
    return await get_role(conn, name) if inserted else None


async def update_role(conn: Connection, name: str, scopes: list[str]) -> asyncpg.Record | None:
    """The role with its new scopes, or None if it does not exist or is built in."""
    updated = await conn.fetchval(
        "UPDATE roles SET scopes = $2, updated_at = now() WHERE name = $1 AND NOT builtin RETURNING name", name, scopes
    )
    return await get_role(conn, name) if updated else None


async def delete_role(conn: Connection, name: str) -> bool:
    """Delete a custom role no user has."""
    status = await conn.execute(
        """
        DELETE FROM roles r
        WHERE name = $1 AND NOT builtin AND NOT EXISTS (SELECT 1 FROM users u WHERE u.role = r.name)
        """,
        name,
    )
    return bool(status.endswith(" 1"))
