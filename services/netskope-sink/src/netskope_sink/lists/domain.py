"""What to push to a list, decided without I/O: the call that takes the tenant from what it holds to
what it should hold, and how its answers read. The selection within the cap and the diff are set-wise,
in PostgreSQL (repository.prepare_push)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from cte_common.events import ShareIntent

DUPLICATE_REQUEST = "Duplicate request, no change in file hashes"


def latest_intents(intents: list[ShareIntent]) -> list[ShareIntent]:
    """The last intent per (list, value) wins: intents for one list arrive in order on one partition."""
    last: dict[tuple[str, str], ShareIntent] = {}
    for intent in intents:
        last[(intent.list_key, intent.value)] = intent
    return list(last.values())


PushMode = Literal["none", "create", "append", "replace"]


def plan_push(*, exists: bool, appends: int, removes: int, holds_any: bool) -> PushMode:
    """The one call that takes the tenant's list where it should be. The URL-list API can append but
    not remove: anything that must go, or a list whose content is not known to be ours alone (the
    default placeholder, a record not trusted), is replaced whole; a file hash list (v1) is always
    replaced, and is never called for nothing."""
    if not exists:
        return "create"
    if holds_any and not appends and not removes:
        return "none"
    if removes or not holds_any:
        return "replace"
    return "append"


def rejected_entries(body: Any) -> list[tuple[str, str]]:
    """The entries a 400 from the URL-list API refused: its message lists [entry, reason] pairs."""
    message = body.get("message") if isinstance(body, Mapping) else None
    out = []
    if isinstance(message, list):
        for item in message:
            if isinstance(item, list | tuple) and item and isinstance(item[0], str):
                out.append((item[0], str(item[1]) if len(item) > 1 else "refused by the tenant"))
    return out


def v1_errors(body: Any) -> list[str]:
    if isinstance(body, Mapping) and body.get("status") == "error":
        return [str(e) for e in body.get("errors") or [body.get("errorCode", "error")]]
    return []
