"""What to push to a list, decided without I/O: the call that takes the tenant from what it holds to
what it should hold, and how its answers read. The selection within the cap and the diff are set-wise,
in PostgreSQL (repository.prepare_push)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cte_common import url_list
from cte_common.events import AnyShareIntent
from cte_common.indicators import IndicatorType
from cte_common.sharing import split_list_key
from netskope_sink.tenant.domain import credentials_rejected

DUPLICATE_REQUEST = "Duplicate request, no change in file hashes"


def latest_intents(intents: Sequence[AnyShareIntent]) -> list[AnyShareIntent]:
    """The last intent per (list, value) wins: intents for one list arrive in order on one partition."""
    last: dict[tuple[str, str], AnyShareIntent] = {}
    for intent in intents:
        last[(intent.list_key, intent.value)] = intent
    return list(last.values())


def refused_by_pre_check(list_key: str, kind: IndicatorType, value: str, *, regex: bool) -> bool:
    """Whether a member's list cannot hold it, known before anything is pushed: in a URL list, an IPv6
    address, or (in an ``exact`` list) an entry Netskope's documented grammar refuses (cte_common.url_list,
    the tenant's "Invalid host"). Such a member is never pushed and takes no room under the cap; the
    list status counts it as left out, invalid. A ``regex`` list's entries are patterns: only IPv6 is
    known unfit there."""
    if split_list_key(list_key)[1] != "url":
        return False
    if kind == IndicatorType.IPV6:
        return True
    return not regex and url_list.list_entry(kind, value) is None


PushMode = Literal["none", "create", "append", "replace"]


def plan_url_push(*, exists: bool, appends: int, removes: int) -> PushMode:
    """The one call that takes a URL list where it should be, touching only our entries (as Netskope's
    plugin does): entries are appended; when some of ours must go, the list as the tenant holds it
    now, less those, replaces it (the v2 API has no removal call), so entries we did not put there
    stay."""
    if not exists:
        return "create"
    if removes:
        return "replace"
    return "append" if appends else "none"


def replaced_entries(
    holds: Sequence[str], *, removes: Collection[str], appends: Sequence[str], exclude: Collection[str]
) -> list[str]:
    """A URL list's replace: what the tenant holds now (just read), in its order, less our removals and
    ``exclude``, plus the appends it does not hold yet. Entries we did not put there stay."""
    drop = {*removes, *exclude}
    kept = [e for e in holds if e not in drop] if drop else list(holds)
    new = {e: None for e in appends if e not in exclude}
    if new:
        for e in new.keys() & kept:  # (the list is walked once, each entry looked up in the appends)
            new.pop(e)
        kept.extend(new)
    return kept


@dataclass(frozen=True)
class CapReserve:
    """How a list at its cap that is fed without a pause keeps room below its cap.

    At the cap, every value that arrives at the top of the order pushes one out at the bottom, and the
    v2 API removes only by replacing the whole list (read back first, to keep foreign entries): a
    replace on every push, paid whatever the push carries. A list trimmed twice within ``2 * seconds``
    is being fed: its next trim gives up, besides what the cap needs, room for ``seconds`` of its
    inflow (at most ``max_share`` of its cap, in bytes and in entries), and later pushes grow it only
    up to that reserve. The values that arrive meanwhile are appended until the reserve is used, then
    one replace trims again. A push the reserve held below the cap makes the list due again a few
    seconds later (the sink's ``cap_settle_seconds``): once no change came meanwhile, that push has no
    inflow, keeps no reserve and fills the list up to its cap, so a quiet list holds exactly what the
    rules select within the cap.
    ``seconds`` = 0 turns it off (every push keeps the longest prefix that fits)."""

    seconds: float = 0.0
    max_share: float = 0.0

    def room(
        self,
        *,
        cap_bytes: int,
        max_entries: int,
        grown_bytes: int,
        grown_entries: int,
        since_push: float | None,
        since_trim: float | None,
    ) -> tuple[int, int]:
        """(bytes, entries) to keep free below the cap for a push whose changes grew the kept prefix
        by ``grown_bytes`` and ``grown_entries`` in the ``since_push`` seconds since the list's last
        push; ``since_trim``: seconds since its last trim (None: never trimmed)."""
        if self.seconds <= 0 or self.max_share <= 0 or since_trim is None or since_trim > 2 * self.seconds:
            return 0, 0
        # A push right after another measures its inflow over a short time: the rate's floor.
        elapsed = max(since_push if since_push is not None else self.seconds, 0.1)
        scale = self.seconds / elapsed
        room_bytes = min(int(cap_bytes * self.max_share), math.ceil(max(0, grown_bytes) * scale))
        room_entries = min(int(max_entries * self.max_share), math.ceil(max(0, grown_entries) * scale))
        return room_bytes, room_entries


def file_push_needed(*, appends: int, removes: int, holds_any: bool) -> bool:
    """A file hash list (v1) is replaced whole, never for nothing (the tenant cannot be read back, so
    what it holds is what we pushed)."""
    return bool(appends or removes or not holds_any)


def _pairs(items: Any) -> list[tuple[str, str]]:
    out = []
    if isinstance(items, list):
        for item in items:
            if isinstance(item, list | tuple) and item and isinstance(item[0], str):
                out.append((item[0], str(item[1]) if len(item) > 1 else "refused by the tenant"))
    return out


def rejected_entries(body: Any) -> list[tuple[str, str]]:
    """The entries a 400 from the URL-list API refused, as [entry, reason] pairs: under ``message`` (what
    Netskope's plugin reads) or under ``errors`` (the documentation's example)."""
    if not isinstance(body, Mapping):
        return []
    return _pairs(body.get("message")) or _pairs(body.get("errors"))


def tenant_message(body: Any, text: str) -> str:
    """The tenant's own words for a refusal: its ``message`` (or ``errors``) when the body has one, else
    the body's text."""
    if isinstance(body, Mapping):
        for key in ("message", "errors"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value:
                return "; ".join(v if isinstance(v, str) else ": ".join(map(str, v)) for v in value)
    return text[:500]


FailureKind = Literal["credentials", "refused", "transient"]


def failure_kind(status: int | None) -> FailureKind:
    """How a failed push is handled: 401/403 reject the tenant's credentials; any other answer the
    tenant gave deliberately (a 4xx but 429, or a v1 error in a 200) refuses the list; a 429, a 5xx
    or no answer is transient."""
    if credentials_rejected(status):
        return "credentials"
    if status is not None and (status < 500 and status != 429):
        return "refused"
    return "transient"


def refused_backoff(failures: int, initial: float, maximum: float) -> float:
    """Seconds until a refused list is tried again: doubling from ``initial`` up to ``maximum``."""
    return float(min(maximum, initial * 2.0 ** min(failures, 20)))


def split_left_out(left_out: int, kept: int, fit: int | None, tenant_bound: bool) -> tuple[int, int]:
    """(by the cap, by the tenant's limits) of what a push left out. ``fit``: how many its own cap
    would keep (known when the tenant's limits were planned across lists); else ``tenant_bound`` says
    whether the tenant's limit, not the cap, ended the list."""
    tenant = left_out if tenant_bound else 0
    if fit is not None:
        tenant = min(left_out, max(0, fit - kept))
    return left_out - tenant, tenant


def v1_errors(body: Any) -> list[str]:
    if isinstance(body, Mapping) and body.get("status") == "error":
        return [str(e) for e in body.get("errors") or [body.get("errorCode", "error")]]
    return []
