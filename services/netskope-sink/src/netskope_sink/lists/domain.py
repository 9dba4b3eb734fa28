"""What to push to a list, decided without I/O: the selection within the cap, the calls that take the
tenant from what it holds to what it should hold, and the tag changes that report what was left out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cte_common.events import ShareIntent
from cte_common.sharing import Candidate, select_within_cap

UNSHARED = "Unshared"
INVALID_HOST = "Invalid host"
DUPLICATE_REQUEST = "Duplicate request, no change in file hashes"


def latest_intents(intents: list[ShareIntent]) -> list[ShareIntent]:
    """The last intent per (list, value) wins: intents for one list arrive in order on one partition."""
    last: dict[tuple[str, str], ShareIntent] = {}
    for intent in intents:
        last[(intent.list_key, intent.value)] = intent
    return list(last.values())


@dataclass(frozen=True)
class Selection:
    selected: list[str]
    left_out: list[str]
    bytes: int


def select(candidates: Iterable[Candidate], rejected: set[str], cap_bytes: int) -> Selection:
    """The list's content: the top of the priority order within the cap, never a value the tenant refused."""
    usable = [c for c in candidates if c.value not in rejected]
    kept, left = select_within_cap(usable, cap_bytes)
    return Selection([c.value for c in kept], [c.value for c in left], 1 + sum(c.cost for c in kept))


@dataclass(frozen=True)
class UrlPlan:
    """One call for a URL list: append only what is new, or replace when anything must go."""

    mode: Literal["none", "append", "replace"]
    urls: list[str] = field(default_factory=list)


def plan_url_push(selected: list[str], pushed: set[str], default_url: str) -> UrlPlan:
    wanted = set(selected)
    if wanted == pushed and pushed:
        return UrlPlan("none")
    if not pushed or pushed - wanted:
        # An empty list holds the default placeholder, which must go too.
        # The v2 API has no removal call: a replace with the whole content is the only way out.
        return UrlPlan("replace", selected or [default_url])
    return UrlPlan("append", [v for v in selected if v not in pushed])


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


@dataclass(frozen=True)
class TagChanges:
    add: dict[str, list[str]]  # tag -> values
    remove: dict[str, list[str]]


def outcome_tags(before: Mapping[str, str], after: Mapping[str, str], now_shared: Iterable[str]) -> TagChanges:
    """Tag changes for what changed outcome: left out -> Unshared, refused -> Invalid host; shared again
    -> both removed. Only changes produce events, so a steady list costs nothing."""
    tag_of = {"left_out": UNSHARED, "rejected": INVALID_HOST}
    add: dict[str, list[str]] = {}
    remove: dict[str, list[str]] = {}
    for value, outcome in after.items():
        if before.get(value) != outcome:
            add.setdefault(tag_of[outcome], []).append(value)
    for value in now_shared:
        if value in before:
            remove.setdefault(tag_of[before[value]], []).append(value)
    return TagChanges(add, remove)


_SCHEMES = ("http://", "https://", "ftp://")


def url_list_entry(value: str, kind: str) -> str | None:
    """The canonical value as a Netskope URL-list entry (host, host/path, host:port, IPv4), or None
    when URL lists cannot hold it (IPv6, which the reference also reports as unshared)."""
    if kind == "ipv6":
        return None
    if kind == "url" and value.startswith(_SCHEMES):
        return value.partition("://")[2]
    return value


def to_entries(values: list[str], kinds: Mapping[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """Entries for values, in order, each once (http:// and https:// of one URL are one entry), with
    the values that produced each; and the values no entry can express."""
    entries: dict[str, list[str]] = {}
    unfit: list[str] = []
    kind_of = kinds.get
    for v in values:
        entry = url_list_entry(v, kind_of(v, "url"))
        if entry is None:
            unfit.append(v)
            continue
        same = entries.get(entry)
        if same is None:
            entries[entry] = [v]
        else:
            same.append(v)
    return entries, unfit
