"""What the audit log keeps of a request, without I/O: which requests, and their bodies without secrets."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from ingest_api.audit.schemas import AuditEntry

# Changes that are audited: configuration of every kind, users, roles and tokens. Indicator writes are
# not (their history is the indicator topic); sign-ins are recorded by /api/auth itself.
AUDITED_PREFIXES = (
    "/api/cte/configuration",  # also /configurations
    "/api/cte/plugins/configurations",
    "/api/cte/business_rule",  # also /business_rules
    "/api/cte/sharing",
    "/api/cte/allow_list",
    "/api/cte/tags",
    "/api/tenants",
    "/api/users",
    "/api/roles",
    "/api/settings",
)
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDACTED = "[redacted]"
# A key naming a secret, whatever its case and separators: v1Token, client_secret, newPassword, apiKey.
_SECRET_KEY = re.compile(r"token|secret|passw|credential|api_?key|authorization|private", re.IGNORECASE)
# The request kept in an entry is cut at this many characters (a rule's filter can be long).
MAX_DETAILS = 8_000


def audited(method: str, path: str) -> bool:
    return method in CHANGING_METHODS and path.startswith(AUDITED_PREFIXES)


def redact(value: Any) -> Any:
    """``value`` with the value of every key that names a secret replaced, at any depth."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def details(body: bytes, content_type: str, query: dict[str, str]) -> dict[str, Any]:
    """The request's body (JSON, else a note that it was not) and query, without secrets."""
    kept: dict[str, Any] = {}
    if query:
        kept["query"] = redact(query)
    if body:
        if content_type.startswith("application/json"):
            try:
                kept["body"] = redact(json.loads(body))
            except ValueError:
                kept["body"] = "(not JSON)"
        else:
            kept["body"] = "(not JSON)"
    text = json.dumps(kept, separators=(",", ":"), ensure_ascii=False)
    return kept if len(text) <= MAX_DETAILS else {"truncated": text[:MAX_DETAILS]}


def path_template(path: str, path_params: dict[str, Any]) -> str:
    """The route's template (``/api/tenants/{name}``): each segment that is a path parameter's value
    becomes its name, so entries of one resource group together whatever they were about."""
    names = {str(v): k for k, v in path_params.items()}
    return "/".join("{" + names[unquote(seg)] + "}" if unquote(seg) in names else seg for seg in path.split("/"))


def target_of(path_params: dict[str, Any], body: Any) -> str | None:
    """What the change is about: the path's name or id, else the body's name, username or client_id."""
    for value in path_params.values():
        return str(value)
    if isinstance(body, dict):
        for key in ("name", "username", "client_id"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return None


def entry_out(row: Any) -> AuditEntry:
    return {
        "id": row["id"],
        "at": row["at"],
        "actor": row["actor"],
        "address": row["address"],
        "action": row["action"],
        "resource": row["resource"],
        "target": row["target"],
        "outcome": row["outcome"],
        "status": row["status"],
        "details": json.dumps(row["details"]) if not isinstance(row["details"], str) else row["details"],
    }
