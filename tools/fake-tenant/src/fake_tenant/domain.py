"""The fake tenant's state and rules, without I/O.

State lives in memory, by design: this is a fake Netskope tenant, a test double that tests, the demo
and benchmarks start, drive and reset at will. There is no repository; a restart (or
``POST /_sim/reset``) forgets every list, alert, iterator, fault setting and logged request.

What is documented and what is inferred is listed in docs/FAKE_TENANT.md; the comments below say
why where a rule is a reading of the reference rather than a quote of it.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fake_tenant.url_grammar import regex_entry_problem, url_entry_problem

MiB = 1024 * 1024
URL_LIST_TYPES = ("exact", "regex")
# Characters a URL list name may not contain (observed on a live tenant).
FORBIDDEN_NAME_CHARS = frozenset("<>/!@#$%^&*(){};+=,?.|:'\"")
URL_LIST_FIELDS = ("id", "name", "data", "modify_type", "modify_time", "modify_by", "pending")
MODIFY_BY = "cte-fake-tenant"
# The tenant answers an unchanged file hash list with this error; the plugin counts it as success.
DUPLICATE_REQUEST = "Duplicate request, no change in file hashes"
# The general REST v1 error code.
V1_ERROR_CODE = "General Error"
# Path type -> the alert_type its alerts carry (the reference's spelling, case included).
ALERT_TYPES = {"malware": "Malware", "malsite": "malsite"}
ITERATOR_OPERATIONS = ("next", "head", "tail", "resend")
FAULT_KINDS = ("429", "500", "502", "timeout", "drop")


class TenantError(Exception):
    """A request the tenant refuses; handlers answer ``{"status": "error", "message": message}``."""

    def __init__(self, status: int, message: str | list[list[Any]]) -> None:
        super().__init__(message if isinstance(message, str) else f"{len(message)} rejected entries")
        self.status = status
        self.message = message


def iso_millis(now: float) -> str:
    """The tenant's modify_time format: ``2026-05-19T13:03:32.000Z``."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------- sizes


def json_len(value: str) -> int:
    """``len(json.dumps(value))``, without building an encoder per call (lists hold 300,000 values)."""
    return len(encode_basestring_ascii(value))


def list_bytes(values: Iterable[str]) -> int:
    """Size of a list as the reference plugin counts it before a push: each value costs
    ``len(json.dumps(value)) + 3``, the first one ``+ 4``; an empty list costs nothing."""
    total = 0
    count = 0
    for value in values:
        total += json_len(value) + 3
        count += 1
    return total + 1 if count else 0


# ---------------------------------------------------------------------------- URL-list grammar


def rejected_entries(
    entries: Sequence[object], list_type: str, refused: Mapping[str, str] | None = None
) -> list[list[Any]]:
    """``[[entry, reason], ...]`` for every refused entry, in request order (the 400's message).
    ``refused``: entries a test makes the tenant refuse whatever the grammar says (entry -> reason)."""
    check = url_entry_problem if list_type == "exact" else regex_entry_problem
    out: list[list[Any]] = []
    for entry in entries:
        reason = refused.get(entry) if refused and isinstance(entry, str) else None
        reason = reason or check(entry)
        if reason is not None:
            out.append([entry, reason])
    return out


# ---------------------------------------------------------------------------- URL lists


@dataclass(frozen=True)
class Version:
    """One state of a URL list: what is deployed, or the change waiting for deploy."""

    name: str
    type: str
    urls: tuple[str, ...]
    size: int  # list_bytes(urls), kept so appends to a large list stay cheap
    modify_type: str
    modify_time: str


@dataclass
class UrlList:
    id: int
    deployed: Version | None = None  # None until the first deploy
    pending: Version | None = None  # the undeployed change (for a deletion, the version being deleted)
    deleting: bool = False

    @property
    def latest(self) -> Version:
        version = self.pending or self.deployed
        assert version is not None  # a list always has one of the two
        return version


def _parse_name(body: dict[str, Any]) -> str:
    if "name" not in body or body["name"] is None:
        raise TenantError(400, "name is required")
    name = body["name"]
    if not isinstance(name, str) or not name.strip():
        raise TenantError(400, "name must be a non-empty string")
    bad = sorted(FORBIDDEN_NAME_CHARS.intersection(name))
    if bad:
        raise TenantError(400, f"name contains characters that are not allowed: {' '.join(bad)}")
    return name


def _parse_data(body: dict[str, Any], list_type: str | None) -> tuple[list[Any], str]:
    """``(urls, type)`` of a body's ``data``; ``list_type`` is the type to assume when the body gives
    none (None: the type is required)."""
    data = body.get("data")
    if data is None:
        raise TenantError(400, "data is required")
    if not isinstance(data, dict):
        raise TenantError(400, "data must be an object")
    urls = data.get("urls")
    if urls is None:
        raise TenantError(400, "data.urls is required")
    if not isinstance(urls, list):
        raise TenantError(400, "data.urls must be an array of strings")
    if not urls:
        # Inferred: the reference plugin never sends an empty array (it pushes a default URL instead).
        raise TenantError(400, "data.urls must not be empty")
    given = data.get("type")
    if given is None and list_type is None:
        raise TenantError(400, "data.type is required")
    chosen = list_type if given is None else given
    if chosen not in URL_LIST_TYPES:
        raise TenantError(400, "data.type must be 'exact' or 'regex'")
    assert isinstance(chosen, str)
    return urls, chosen


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TenantError(400, "request body must be a JSON object")
    return body


def _parse_fields(field_param: str | None) -> tuple[str, ...] | None:
    if field_param is None or not field_param.strip():
        return None
    fields = tuple(f.strip() for f in field_param.split(",") if f.strip())
    unknown = [f for f in fields if f not in URL_LIST_FIELDS]
    if unknown:
        raise TenantError(400, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(URL_LIST_FIELDS)}")
    return fields


def _parse_pending(pending_param: str | None) -> int | None:
    if pending_param is None or pending_param == "":
        return None
    if pending_param not in ("0", "1"):
        raise TenantError(400, "pending must be 0 or 1")
    return int(pending_param)


def _record(list_id: int, version: Version, pending: int, fields: tuple[str, ...] | None) -> dict[str, Any]:
    wanted = fields or URL_LIST_FIELDS
    out: dict[str, Any] = {}
    for name in wanted:
        if name == "id":
            out["id"] = list_id
        elif name == "name":
            out["name"] = version.name
        elif name == "data":
            out["data"] = {"urls": list(version.urls), "type": version.type, "json_version": 2}
        elif name == "modify_by":
            out["modify_by"] = MODIFY_BY
        elif name == "modify_time":
            out["modify_time"] = version.modify_time
        elif name == "modify_type":
            out["modify_type"] = version.modify_type
        elif name == "pending":
            out["pending"] = pending
    return out


class UrlLists:
    """The tenant's URL lists, REST v2: every change is pending until deploy (two-phase commit)."""

    def __init__(
        self, max_bytes: int, max_entries: int, tenant_max_entries: int = 300_000, tenant_max_regex: int = 1_000
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        # Documented per tenant, across all its URL lists (URL List Best Practices).
        self.tenant_max_entries = tenant_max_entries
        self.tenant_max_regex = tenant_max_regex
        self._lists: dict[int, UrlList] = {}
        self._next_id = 1
        # Lists the tenant refuses to change (by name), with the status and message it answers: a test's
        # stand-in for whatever makes a real tenant refuse a list outright.
        self.refusals: dict[str, tuple[int, str]] = {}
        # Entries refused one by one whatever the grammar says (entry -> reason): a test's stand-in for
        # whatever a real tenant refuses that its documentation does not (PUT /_sim/behaviour).
        self.refused_entries: dict[str, str] = {}

    # -- reads

    def listing(self, field_param: str | None = None, pending_param: str | None = None) -> list[dict[str, Any]]:
        """``GET /urllist``. Without ``pending``: every list as it will be after the next deploy
        (``pending: 1`` when it has an undeployed change). ``pending=1``: only the lists with an
        undeployed change. ``pending=0``: the deployed lists, as deployed."""
        fields = _parse_fields(field_param)
        pending = _parse_pending(pending_param)
        out = []
        for lst in self._lists.values():
            if pending == 0:
                if lst.deployed is not None:
                    out.append(_record(lst.id, lst.deployed, 0, fields))
            elif pending == 1:
                if lst.pending is not None:
                    out.append(_record(lst.id, lst.pending, 1, fields))
            else:
                out.append(self._latest_record(lst, fields))
        return out

    def get(self, list_id: str | int) -> dict[str, Any]:
        return self._latest_record(self._find(list_id), None)

    # -- writes (all pending until deploy)

    def create(self, body: object, now: float) -> list[dict[str, Any]]:
        body = _object(body)
        name = _parse_name(body)
        self._check_refusal(name)
        urls, list_type = _parse_data(body, None)
        self._check_name_free(name, None)
        values, size = self._validated(name, list_type, (), 0, urls, own=0)
        lst = UrlList(id=self._next_id)
        lst.pending = Version(name, list_type, values, size, "Created", iso_millis(now))
        self._lists[lst.id] = lst
        self._next_id += 1
        return [self._latest_record(lst, None)]

    def put(self, list_id: str | int, body: object, now: float) -> dict[str, Any]:
        lst = self._editable(list_id)
        body = _object(body)
        name = _parse_name(body)
        urls, list_type = _parse_data(body, None)
        self._check_name_free(name, lst.id)
        values, size = self._validated(name, list_type, (), 0, urls, own=lst.id)
        lst.pending = Version(name, list_type, values, size, "Edited", iso_millis(now))
        return self._latest_record(lst, None)

    def patch(self, list_id: str | int, action: str, body: object, now: float) -> dict[str, Any]:
        """``PATCH /urllist/{id}/append`` (adds the entries not yet in the list) or ``/replace``."""
        if action not in ("append", "replace"):
            raise TenantError(404, f"unknown action {action!r}: append or replace")
        lst = self._editable(list_id)
        current = lst.latest
        body = _object(body)
        urls, list_type = _parse_data(body, current.type)
        if action == "append":
            if list_type != current.type:
                # Inferred: appending cannot change the list's type; replace can.
                raise TenantError(400, f"data.type {list_type!r} does not match the list's type {current.type!r}")
            values, size = self._validated(current.name, list_type, current.urls, current.size, urls, own=lst.id)
        else:
            # The entries the list holds passed the same grammar already: a replace that removes a few
            # entries from a large list checks only what is new to it (same answer, far less work).
            known = frozenset(current.urls) if list_type == current.type else frozenset()
            values, size = self._validated(current.name, list_type, (), 0, urls, known, own=lst.id)
        lst.pending = Version(current.name, list_type, values, size, "Edited", iso_millis(now))
        return self._latest_record(lst, None)

    def delete(self, list_id: str | int, now: float) -> dict[str, Any]:
        lst = self._find(list_id)
        if not lst.deleting:
            lst.pending = replace(lst.latest, modify_type="Deleted", modify_time=iso_millis(now))
            lst.deleting = True
        return self._latest_record(lst, None)

    def deploy(self) -> list[dict[str, Any]]:
        """Apply every pending change; answer the lists it applied, as now deployed."""
        out = []
        for list_id in list(self._lists):
            lst = self._lists[list_id]
            if lst.pending is None:
                continue
            out.append(_record(lst.id, lst.pending, 0, None))
            if lst.deleting:
                del self._lists[list_id]
            else:
                lst.deployed, lst.pending = lst.pending, None
        return out

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """For /_sim/state: per list name, what is deployed and what the next deploy will leave
        (``pending``: None when the list is being deleted)."""
        out = {}
        for lst in self._lists.values():
            latest = lst.latest
            out[latest.name] = {
                "id": lst.id,
                "type": latest.type,
                "deployed": list(lst.deployed.urls) if lst.deployed else [],
                "pending": None if lst.deleting else list(latest.urls),
                "has_pending_change": lst.pending is not None,
                "deleting": lst.deleting,
                "deployed_bytes": lst.deployed.size if lst.deployed else 0,
                "pending_bytes": 0 if lst.deleting else latest.size,
            }
        return out

    # -- helpers

    def _latest_record(self, lst: UrlList, fields: tuple[str, ...] | None) -> dict[str, Any]:
        return _record(lst.id, lst.latest, 1 if lst.pending is not None else 0, fields)

    def _find(self, list_id: str | int) -> UrlList:
        text = str(list_id)
        lst = self._lists.get(int(text)) if text.isdigit() else None
        if lst is None:
            raise TenantError(404, f"URL list {list_id} not found")
        return lst

    def _editable(self, list_id: str | int) -> UrlList:
        lst = self._find(list_id)
        self._check_refusal(lst.latest.name)
        if lst.deleting:
            raise TenantError(400, f"URL list {lst.id} is pending deletion; deploy first")
        return lst

    def _check_refusal(self, name: str) -> None:
        refusal = self.refusals.get(name)
        if refusal is not None:
            raise TenantError(*refusal)

    def _held_elsewhere(self, own: int) -> tuple[int, int]:
        """Entries (and regex entries) the tenant's other URL lists hold, as the next deploy leaves them."""
        entries = regex = 0
        for lst in self._lists.values():
            if lst.id == own or lst.deleting:
                continue
            entries += len(lst.latest.urls)
            if lst.latest.type == "regex":
                regex += len(lst.latest.urls)
        return entries, regex

    def _check_name_free(self, name: str, own_id: int | None) -> None:
        for lst in self._lists.values():
            if lst.id == own_id:
                continue
            names = {lst.latest.name} | ({lst.deployed.name} if lst.deployed else set())
            if name in names:
                raise TenantError(400, f"URL list name '{name}' already exists")

    def _validated(
        self,
        name: str,
        list_type: str,
        existing: tuple[str, ...],
        existing_size: int,
        urls: list[Any],
        known: frozenset[str] = frozenset(),
        *,
        own: int,
    ) -> tuple[tuple[str, ...], int]:
        """``existing`` plus the new entries not in it yet, and its size; or a 400: every refused
        entry (nothing applied), else the caps, else the tenant's limits across its lists (``own``: this
        list's id, 0 for a new one). ``known``: entries already accepted in this list type."""
        unchecked = [u for u in urls if not (isinstance(u, str) and u in known)] if known else urls
        rejected = rejected_entries(unchecked, list_type, self.refused_entries)
        if rejected:
            raise TenantError(400, rejected)
        # Inferred: a list holds each value once (first occurrence kept), like a set.
        present = set(existing)
        added = [u for u in dict.fromkeys(urls) if u not in present]
        values = existing + tuple(added)
        if len(values) > self.max_entries:
            raise TenantError(
                400, f"URL list '{name}' would hold {len(values)} entries, more than the {self.max_entries} allowed"
            )
        # Counted incrementally: the first value's extra byte is in existing_size once it is non-empty.
        size = ((existing_size or 1) + sum(json_len(u) + 3 for u in added)) if added else existing_size
        if size > self.max_bytes:
            raise TenantError(
                400,
                f"URL list '{name}' would hold {size} bytes, more than the {self.max_bytes} allowed "
                "(each URL counts len(json.dumps(url)) + 3 bytes, the first + 4)",
            )
        elsewhere, regex_elsewhere = self._held_elsewhere(own)
        if elsewhere + len(values) > self.tenant_max_entries:
            raise TenantError(
                400,
                f"URL list '{name}' would bring the tenant's URL lists to {elsewhere + len(values)} entries, "
                f"more than the {self.tenant_max_entries} allowed per tenant",
            )
        if list_type == "regex" and regex_elsewhere + len(values) > self.tenant_max_regex:
            raise TenantError(
                400,
                f"URL list '{name}' would bring the tenant's regex entries to {regex_elsewhere + len(values)}, "
                f"more than the {self.tenant_max_regex} allowed per tenant",
            )
        return values, size


# ---------------------------------------------------------------------------- file hash lists

_HASH = re.compile(r"[0-9A-Fa-f]{32}|[0-9A-Fa-f]{64}")


class FileHashLists:
    """The tenant's file hash lists, REST v1: a whole-list replace, no deploy step."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lists: dict[str, tuple[str, ...]] = {}
        self.refusals: dict[str, tuple[int, str]] = {}  # as UrlLists.refusals (answered in the v1 envelope)
        self._pending_change: set[str] = set()

    def create(self, name: object, pending_change: bool = False) -> bool:
        """Create an empty list (a tenant admin's job, hence /_sim/); True when it is new. An
        existing list keeps its content; ``pending_change`` marks it as having an unapplied change,
        which makes the tenant refuse updates."""
        if not isinstance(name, str) or not name.strip():
            raise TenantError(400, "name must be a non-empty string")
        created = name not in self._lists
        if created:
            self._lists[name] = ()
        if pending_change:
            self._pending_change.add(name)
        else:
            self._pending_change.discard(name)
        return created

    def update(self, name: object, hashes: object) -> list[str]:
        """``updateFileHashList``: replace the whole list. Answers the errors ([] on success)."""
        if not isinstance(name, str) or not name:
            return ["name is required"]
        if name not in self._lists:
            return [f"File hash list '{name}' does not exist"]
        if name in self.refusals:
            return [self.refusals[name][1]]
        if name in self._pending_change:
            return [f"File hash list '{name}' has a pending change; apply it before updating"]
        if not isinstance(hashes, str):
            return ["list is required: a comma-separated string of MD5 or SHA256 hashes"]
        entries = [h.strip() for h in hashes.split(",")]
        entries = [h for h in entries if h]
        invalid = [h for h in entries if not _HASH.fullmatch(h)]
        if invalid:
            return [f"Invalid file hash (not MD5 or SHA256): {h}" for h in invalid]
        # Hashes are hex: compared and kept in lower case, each once.
        values = tuple(dict.fromkeys(h.lower() for h in entries))
        size = list_bytes(values)
        if size > self.max_bytes:
            return [
                f"File hash list '{name}' would hold {size} bytes, more than the {self.max_bytes} allowed "
                "(each hash counts len(json.dumps(hash)) + 3 bytes, the first + 4)"
            ]
        if set(values) == set(self._lists[name]):
            return [DUPLICATE_REQUEST]
        self._lists[name] = values
        return []

    def snapshot(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in self._lists.items()}


# ---------------------------------------------------------------------------- alert export


@dataclass
class AlertIterator:
    """One dataexport iterator (an ``index``) of one alert type: a cursor into that type's alerts."""

    position: int = 0  # the next alert to look at, in the order the tenant received them
    since: float = 0  # alerts with an older timestamp are skipped (set by an epoch operation)
    hwm: int = 0  # timestamp_hwm: the newest timestamp delivered so far
    last_page: list[dict[str, Any]] = field(default_factory=list)


class ExportIn(BaseModel):
    """``PUT /_sim/export``: the alert export's page size, wait_time and per-endpoint rate limit, changed
    while the tenant runs (a reset restores the configured ones). Omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    page_size: int | None = Field(default=None, ge=1)
    wait_time: int | None = Field(default=None, ge=0)
    rate_limit: int | None = Field(default=None, ge=0, description="requests per window per endpoint (0: off)")
    rate_window: float | None = Field(default=None, gt=0)


class AlertExport:
    """``GET /api/v2/events/dataexport/alerts/{malware|malsite}?index=&operation=``."""

    def __init__(self, page_size: int, wait_time: int, rate_limit: int = 4, rate_window: float = 1.0) -> None:
        self.page_size = page_size
        self.wait_time = wait_time
        # Documented: 4 requests per second per iterator endpoint (per token here: each client's own).
        self.limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self._alerts: dict[str, list[dict[str, Any]]] = {t: [] for t in ALERT_TYPES}
        self._iterators: dict[tuple[str, str], AlertIterator] = {}

    def enqueue(self, alert_type: object, alerts: object, now: float) -> int:
        """Add alerts (``/_sim/alerts``): each gets ``alert_type``, ``timestamp`` (now) and ``_id``
        when it has none. Answers how many alerts of that type the tenant holds."""
        if alert_type not in ALERT_TYPES:
            raise TenantError(400, f"type must be one of {', '.join(ALERT_TYPES)}")
        assert isinstance(alert_type, str)
        if not isinstance(alerts, list):
            raise TenantError(400, "alerts must be an array of objects")
        bad = [
            i
            for i, a in enumerate(alerts)
            if not isinstance(a, dict)
            or isinstance(a.get("timestamp"), bool)
            or not isinstance(a.get("timestamp", 0), int | float)
        ]
        if bad:
            raise TenantError(400, f"alerts {bad}: each must be an object with a numeric timestamp (epoch seconds)")
        log = self._alerts[alert_type]
        for alert in alerts:
            item = dict(alert)
            item.setdefault("alert_type", ALERT_TYPES[alert_type])
            item.setdefault("timestamp", int(now))
            item.setdefault("_id", uuid.uuid4().hex)
            log.append(item)
        return len(log)

    def export(self, alert_type: str, index: str | None, operation: str | None) -> dict[str, Any]:
        """One iterator call. ``next``: the next page, the cursor moves past it. ``resend``: the
        last page again. ``head``: restart at the oldest alert and answer the first page. ``tail``:
        jump past the newest alert, answering nothing, so ``next`` then sees only newer alerts.
        ``<epoch>``: restart at that time (older alerts are skipped) and answer the first page.
        An index seen for the first time starts at the oldest alert."""
        if alert_type not in ALERT_TYPES:
            raise TenantError(404, f"unknown alert type {alert_type!r}: malware or malsite")
        if not index:
            raise TenantError(400, "index is required")
        if not operation:
            raise TenantError(400, "operation is required")
        if operation not in ITERATOR_OPERATIONS and not operation.isdigit():
            raise TenantError(400, "operation must be next, head, tail, resend or an epoch timestamp in seconds")
        log = self._alerts[alert_type]
        key = (alert_type, index)
        it = self._iterators.setdefault(key, AlertIterator())
        if operation == "resend":
            page = it.last_page
        elif operation == "tail":
            it.position = len(log)
            it.last_page = page = []
            if log:
                it.hwm = max(it.hwm, int(max(float(a["timestamp"]) for a in log)))
        else:
            if operation == "head":
                self._iterators[key] = it = AlertIterator()
            elif operation.isdigit():
                epoch = int(operation)
                self._iterators[key] = it = AlertIterator(since=epoch, hwm=epoch)
            page = self._take(log, it)
        # wait_time 0 while more alerts are ready, so a client drains a backlog without sleeping.
        wait = 0 if it.position < len(log) else self.wait_time
        return {"ok": 1, "result": page, "wait_time": wait, "timestamp_hwm": it.hwm}

    def _take(self, log: list[dict[str, Any]], it: AlertIterator) -> list[dict[str, Any]]:
        page: list[dict[str, Any]] = []
        position = it.position
        while position < len(log) and len(page) < self.page_size:
            alert = log[position]
            position += 1
            if float(alert["timestamp"]) >= it.since:
                page.append(alert)
        it.position = position
        it.last_page = page
        if page:
            it.hwm = max(it.hwm, int(max(float(a["timestamp"]) for a in page)))
        return page

    def configure(self, change: ExportIn) -> dict[str, Any]:
        self.page_size = change.page_size if change.page_size is not None else self.page_size
        self.wait_time = change.wait_time if change.wait_time is not None else self.wait_time
        if change.rate_limit is not None or change.rate_window is not None:
            self.limiter = SlidingWindowLimiter(
                change.rate_limit if change.rate_limit is not None else self.limiter.limit,
                change.rate_window if change.rate_window is not None else self.limiter.window,
            )
        return self.settings()

    def settings(self) -> dict[str, Any]:
        return {
            "page_size": self.page_size,
            "wait_time": self.wait_time,
            "rate_limit": self.limiter.limit,
            "rate_window": self.limiter.window,
        }

    def rate(self, token: str, alert_type: str, now: float) -> tuple[float | None, RateWindow | None]:
        """Count one request to an export endpoint: (None, or the seconds to wait when refused; the
        window after it, None while the limit is off). Rate limits apply per endpoint (documented), so
        per alert type here."""
        if self.limiter.limit <= 0:
            return None, None
        key = f"{token}\n{alert_type}"
        wait = self.limiter.check(key, now)
        return wait, self.limiter.window_state(key, now)

    def snapshot(self) -> dict[str, Any]:
        return {
            "alerts": {t: len(log) for t, log in self._alerts.items()},
            "iterators": {
                f"{t}/{index}": {"position": it.position, "since": it.since, "timestamp_hwm": it.hwm}
                for (t, index), it in self._iterators.items()
            },
        }


# ---------------------------------------------------------------------------- rate limits


class SlidingWindowLimiter:
    """At most ``limit`` requests per ``window`` seconds per key (a token), over a sliding window.
    A refused request does not count, so a client that waits as told gets through."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def check(self, key: str, now: float) -> float | None:
        """Record a request at ``now`` (monotonic seconds): None when allowed, else how many
        seconds until the oldest request in the window leaves it."""
        if self.limit <= 0:
            return None
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - now
        hits.append(now)
        return None

    def window_state(self, key: str, now: float) -> RateWindow:
        """What the window holds for ``key`` at ``now`` (after :meth:`check`), for the RateLimit headers."""
        hits = self._hits.get(key, deque())
        live = [t for t in hits if t > now - self.window]
        # Reset: until the oldest request in the window leaves it, which frees a place.
        reset = (live[0] + self.window - now) if live else 0.0
        return RateWindow(self.limit, max(0, self.limit - len(live)), reset)


@dataclass(frozen=True)
class RateWindow:
    """A limiter's window as the dataexport endpoints report it (documented: "Using the REST API v2
    dataexport Iterator Endpoints", Rate Limits): the limit, what is left of it, and the seconds until
    the window frees a place."""

    limit: int
    remaining: int
    reset_seconds: float

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            # Whole seconds, like Retry-After (the documentation's examples show whole seconds).
            "RateLimit-Reset": str(math.ceil(self.reset_seconds)),
        }


# ---------------------------------------------------------------------------- faults


class FaultsIn(BaseModel):
    """``PUT /_sim/faults``: what share of /api/ requests fail, and how. Every field is optional;
    a PUT replaces the whole setting (``{}`` turns faults off)."""

    model_config = ConfigDict(extra="forbid")

    rate_429: float = Field(default=0.0, ge=0, le=1)
    rate_500: float = Field(default=0.0, ge=0, le=1)
    rate_502: float = Field(default=0.0, ge=0, le=1)
    rate_timeout: float = Field(default=0.0, ge=0, le=1)
    rate_drop: float = Field(default=0.0, ge=0, le=1)
    retry_after: int = Field(default=1, ge=0, description="Retry-After of an injected 429, seconds")
    latency_ms: int = Field(default=0, ge=0, le=600_000, description="added to every faulted-path request")
    timeout_seconds: float | None = Field(default=None, gt=0, description="how long a timeout holds the answer")
    seed: int | None = Field(default=None, description="re-seeds the fault draws, for reproducible runs")
    paths: list[str] = Field(default_factory=lambda: ["/api/"], description="path prefixes the faults apply to")

    @model_validator(mode="after")
    def _fractions(self) -> FaultsIn:
        if sum(self.rates()) > 1 + 1e-9:
            raise ValueError("the rates add up to more than 1")
        return self

    def rates(self) -> tuple[float, float, float, float, float]:
        return (self.rate_429, self.rate_500, self.rate_502, self.rate_timeout, self.rate_drop)


class FaultInjector:
    """Decides, per request, which fault (if any) to inject: one uniform draw per request on a
    faulted path, split by the rates in a fixed order, so a seed replays the same faults for the
    same sequence of requests."""

    def __init__(self, seed: int | None) -> None:
        self.config = FaultsIn()
        self._rng = random.Random(seed)  # noqa: S311 (simulation, not security)

    def configure(self, config: FaultsIn) -> None:
        self.config = config
        if config.seed is not None:
            self._rng.seed(config.seed)

    def applies(self, path: str) -> bool:
        return path.startswith("/api/") and any(path.startswith(p) for p in self.config.paths)

    def draw(self) -> str | None:
        u = self._rng.random()
        edge = 0.0
        for kind, rate in zip(FAULT_KINDS, self.config.rates(), strict=True):
            edge += rate
            if u < edge:
                return kind
        return None


# ---------------------------------------------------------------------------- request log


class RequestLog:
    """Every request to the tenant's API (not /_sim/), newest last, in a bounded ring buffer."""

    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0

    def add(
        self,
        method: str,
        path: str,
        query: str,
        status: int | None,
        fault: str | None,
        at: float,
        duration_ms: float,
    ) -> None:
        self._seq += 1
        self._entries.append(
            {
                "seq": self._seq,
                "time": at,
                "method": method,
                "path": path,
                "query": query,
                "status": status,  # None: the connection was dropped without an answer
                "fault": fault,
                "duration_ms": round(duration_ms, 3),
            }
        )

    def snapshot(self, since: int = 0, path_prefix: str = "") -> dict[str, Any]:
        return {
            "total": self._seq,
            "kept": len(self._entries),
            "requests": [e for e in self._entries if e["seq"] > since and str(e["path"]).startswith(path_prefix)],
        }


# ---------------------------------------------------------------------------- the tenant


@dataclass(frozen=True)
class TenantConfig:
    url_list_max_bytes: int = 7 * MiB
    url_list_max_entries: int = 300_000
    tenant_url_entries_max: int = 300_000
    tenant_regex_entries_max: int = 1_000
    upload_max_bytes: int = 8 * MiB
    error_shape: str = "message"  # where a 400 puts refused entries: "message" or "errors"
    file_hash_list_max_bytes: int = 8 * MiB
    alert_page_size: int = 10_000
    alert_wait_time: int = 30
    alert_rate_limit: int = 4
    alert_rate_window: float = 1.0
    v1_rate_limit: int = 24
    v1_rate_window: float = 5.0
    v2_rate_limit: int = 100
    v2_rate_window: float = 1.0
    fault_seed: int | None = None
    timeout_seconds: float = 30.0
    request_log_size: int = 100_000


class Tenant:
    """Everything the fake tenant holds. ``reset`` empties it in place."""

    def __init__(self, config: TenantConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        c = self.config
        self.urllists = UrlLists(
            c.url_list_max_bytes, c.url_list_max_entries, c.tenant_url_entries_max, c.tenant_regex_entries_max
        )
        self.error_shape = c.error_shape
        self.filehashlists = FileHashLists(c.file_hash_list_max_bytes)
        self.alerts = AlertExport(c.alert_page_size, c.alert_wait_time, c.alert_rate_limit, c.alert_rate_window)
        self.v1_limiter = SlidingWindowLimiter(c.v1_rate_limit, c.v1_rate_window)
        self.v2_limiter = SlidingWindowLimiter(c.v2_rate_limit, c.v2_rate_window)
        self.faults = FaultInjector(c.fault_seed)
        self.requests = RequestLog(c.request_log_size)

    def timeout_seconds(self) -> float:
        return self.faults.config.timeout_seconds or self.config.timeout_seconds

    def state(self) -> dict[str, Any]:
        return {
            "urllists": self.urllists.snapshot(),
            "filehashlists": self.filehashlists.snapshot(),
            **self.alerts.snapshot(),
        }
