"""The password policy and the shapes of users and roles, without I/O."""

from __future__ import annotations

from typing import Any

from ingest_api.access.schemas import ALL_SCOPES, Scope
from ingest_api.users.schemas import Role, User

# At least this long; no composition rules (NIST SP 800-63B: length, not character classes, makes a
# password strong, and rules push people to predictable patterns).
MIN_PASSWORD_LENGTH = 12
MIN_DISTINCT_CHARACTERS = 5
# Names that are paths under /api/users, never usernames.
RESERVED_USERNAMES = frozenset({"me", "tokens"})
ADMIN_ROLE = "Admin"
MANAGING_SCOPE = "settings_write"


def password_problems(password: str, username: str) -> list[str]:
    """Why ``password`` breaks the policy (empty: it does not)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"at least {MIN_PASSWORD_LENGTH} characters")
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        problems.append(f"at least {MIN_DISTINCT_CHARACTERS} different characters")
    if username and username.lower() in password.lower():
        problems.append("must not contain the username")
    return problems


def policy_message(problems: list[str]) -> str:
    return "password: " + "; ".join(problems)


def ordered_scopes(scopes: list[str]) -> list[Scope]:
    """Scopes in the documented order, each once."""
    held = set(scopes)
    return [s for s in ALL_SCOPES if s in held]


def user_out(row: Any) -> User:
    return {
        "username": row["username"],
        "role": row["role"],
        "scopes": ordered_scopes(list(row["scopes"])),
        "firstLogin": row["first_login"],
        "active": row["active"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "passwordChangedAt": row["password_changed_at"],
        "lastLoginAt": row["last_login_at"],
    }


def role_out(row: Any) -> Role:
    return {
        "name": row["name"],
        "scopes": ordered_scopes(list(row["scopes"])),
        "builtin": row["builtin"],
        "users": row["users"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
