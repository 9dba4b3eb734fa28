"""What a sharing configuration selects, shared by the rule-engine (continuous decisions), the API (rule
tests and dry runs) and the sink (selection within a list's cap). Pure: no I/O.

An indicator belongs in a sharing's list when, in this order: it is not allow-listed; it is active
and not a test indicator; the sharing's source reports it and has not retracted it; its type fits the
target (URL-ish types for a URL list, hashes for a file hash list); the rule's filter matches; and no
exception of the rule matches (by query, or by a tag carried by any of its source entries).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cte_common import url_list
from cte_common.indicators import HASH_LIST_TYPES, SEVERITY_RANK, URL_LIST_TYPES, IndicatorType, Severity
from cte_common.query import Node, compile_predicate, parse_json, parse_text

__all__ = [
    "DEFAULT_FILE_HASH",
    "DEFAULT_URL",
    "FILE_LIST_CAP_MB",
    "MAX_PUSH_ENTRIES",
    "MIB",
    "URL_LIST_CAP_MB",
    "Action",
    "AllowEntry",
    "AllowKind",
    "AllowList",
    "Candidate",
    "Decision",
    "Evaluator",
    "FileTarget",
    "Outcome",
    "PriorityKind",
    "RuleDef",
    "RuleException",
    "SharingDef",
    "UrlTarget",
    "check_allow_pattern",
    "cost_bytes",
    "entry_cost",
    "fits",
    "list_entry",
    "list_key",
    "order_key",
    "parse_filter",
    "parse_target",
    "priority_of",
    "select_within_cap",
    "split_list_key",
]

MIB = 1024 * 1024
URL_LIST_CAP_MB = 7  # the tenant's URL list limit (plugin >= 2.2.0; the seed's older text says 8)
FILE_LIST_CAP_MB = 8
MAX_PUSH_ENTRIES = 300_000
DEFAULT_URL = "cedefaultpush.io"
DEFAULT_FILE_HASH = "f" * 64

Action = Literal["url", "file"]
PriorityKind = Literal["lastSeen", "severity", "reputation", "sources"]


# --- targets (the reference's action parameters) ----------------------------------------------------


class UrlTarget(BaseModel):
    """``url``: a URL list. ``list`` names an existing list, or is "create" with the new list's ``name``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    list: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    url_list_type: Literal["exact", "regex"] = "exact"
    max_url_list_cap: float = Field(default=URL_LIST_CAP_MB, gt=0)
    default_url: str = Field(default=DEFAULT_URL, min_length=1, max_length=2048)

    @field_validator("url_list_type", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value  # the UI sends "Exact"/"Regex"

    @model_validator(mode="after")
    def _named(self) -> UrlTarget:
        if self.list == "create" and not self.name:
            raise ValueError("name: required when list is 'create'")
        if self.max_url_list_cap > URL_LIST_CAP_MB:
            raise ValueError(f"max_url_list_cap: at most {URL_LIST_CAP_MB} MB, the tenant's URL list limit")
        return self

    @property
    def list_name(self) -> str:
        return self.name if self.list == "create" and self.name else self.list

    @property
    def cap_bytes(self) -> int:
        return int(self.max_url_list_cap * MIB)


class FileTarget(BaseModel):
    """``file``: a file hash list, which must exist on the tenant."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    file_list: str = Field(min_length=1, max_length=200)
    max_file_hash_cap: float = Field(default=FILE_LIST_CAP_MB, gt=0)
    default_file_hash: str = Field(default=DEFAULT_FILE_HASH, pattern=r"^([0-9a-fA-F]{32}|[0-9a-fA-F]{64})$")

    @model_validator(mode="after")
    def _cap(self) -> FileTarget:
        if self.max_file_hash_cap > FILE_LIST_CAP_MB:
            raise ValueError(f"max_file_hash_cap: at most {FILE_LIST_CAP_MB} MB, the tenant's file hash list limit")
        return self

    @property
    def list_name(self) -> str:
        return self.file_list

    @property
    def cap_bytes(self) -> int:
        return int(self.max_file_hash_cap * MIB)


def parse_target(action: Action, parameters: Mapping[str, Any]) -> UrlTarget | FileTarget:
    return UrlTarget.model_validate(parameters) if action == "url" else FileTarget.model_validate(parameters)


def list_key(tenant: str, action: Action, list_name: str) -> str:
    """Names a destination list on its tenant: the share topic's key, so one sink owns a list."""
    return f"{tenant}/{action}/{list_name}"


def split_list_key(key: str) -> tuple[str, Action, str]:
    tenant, action, name = key.split("/", 2)
    assert action in ("url", "file")
    return tenant, action, name  # type: ignore[return-value]


def fits(action: Action, kind: IndicatorType) -> bool:
    return kind in (URL_LIST_TYPES if action == "url" else HASH_LIST_TYPES)


# --- rules --------------------------------------------------------------------------------------------


def parse_filter(*, query: str | None = None, mongo: str | Mapping[str, Any] | None = None) -> Node:
    """A rule filter from the reference's readable query string or its Mongo-style JSON form."""
    if (query is None) == (mongo is None):
        raise ValueError("give the filter as exactly one of query and mongo")
    return parse_text(query) if query is not None else parse_json(mongo)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RuleException:
    name: str
    node: Node | None = None
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RuleDef:
    name: str
    node: Node
    exceptions: tuple[RuleException, ...] = ()
    muted: bool = False
    unmute_at: datetime | None = None

    def muted_at(self, now: datetime) -> bool:
        return self.muted and (self.unmute_at is None or self.unmute_at > now)


@dataclass(frozen=True)
class SharingDef:
    id: int
    source: str
    rule: RuleDef
    action: Action
    list_key: str
    cap_bytes: int
    priority: PriorityKind = "lastSeen"


# --- allow-lists ----------------------------------------------------------------------------------------

AllowKind = Literal["exact", "suffix", "cidr", "regex"]


@dataclass(frozen=True)
class AllowEntry:
    id: int
    kind: AllowKind
    pattern: str


def check_allow_pattern(kind: AllowKind, pattern: str) -> str:
    """Validate and normalise an allow-list pattern; ValueError says why it is unusable."""
    if kind == "cidr":
        return str(ipaddress.ip_network(pattern, strict=False))
    if kind == "regex":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return pattern
    if kind == "suffix":
        return pattern.strip().lower().strip(".").removeprefix("*.")
    return pattern.strip()


def _host(value: str, kind: IndicatorType) -> str | None:
    if kind == IndicatorType.URL:
        parts = urlsplit(value if "://" in value else "//" + value)
        return parts.hostname
    if kind in (IndicatorType.DOMAIN, IndicatorType.HOSTNAME, IndicatorType.FQDN):
        return value.removeprefix("*.")
    if kind in (IndicatorType.IPV4, IndicatorType.IPV6):
        return value
    return None


class AllowList:
    """Matches indicators against the allow-list: exact value, domain suffix (example.com covers
    www.example.com), CIDR containment (IPs and URL hosts that are IPs) and regular expressions."""

    def __init__(self, entries: Iterable[AllowEntry]) -> None:
        self.exact: dict[str, int] = {}
        self.suffixes: dict[str, int] = {}
        self.networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]] = []
        self.regexes: list[tuple[re.Pattern[str], int]] = []
        for e in entries:
            if e.kind == "exact":
                self.exact[e.pattern] = e.id
            elif e.kind == "suffix":
                self.suffixes[e.pattern] = e.id
            elif e.kind == "cidr":
                self.networks.append((ipaddress.ip_network(e.pattern, strict=False), e.id))
            else:
                self.regexes.append((re.compile(e.pattern), e.id))

    def __bool__(self) -> bool:
        return bool(self.exact or self.suffixes or self.networks or self.regexes)

    def match(self, value: str, kind: IndicatorType) -> int | None:
        """The id of the first entry that covers the indicator, or None."""
        if value in self.exact:
            return self.exact[value]
        host = _host(value, kind)
        if host:
            if self.suffixes:
                labels = host.split(".")
                for n in range(len(labels)):
                    hit = self.suffixes.get(".".join(labels[n:]))
                    if hit is not None:
                        return hit
            if self.networks:
                try:
                    ip = ipaddress.ip_address(host)
                except ValueError:
                    ip = None
                if ip is not None:
                    for net, entry_id in self.networks:
                        if ip.version == net.version and ip in net:
                            return entry_id
        for rx, entry_id in self.regexes:
            if rx.search(value):
                return entry_id
        return None


# --- decisions ------------------------------------------------------------------------------------------


def cost_bytes(value: str) -> int:
    """What a value costs against a list's cap, counted as the reference plugin counts it."""
    # json.dumps escapes exactly '"', '\\' and what is not printable ASCII: without any of them its
    # length is the value's and two quotes, found without encoding (once per decision).
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return len(value) + 5
    return len(json.dumps(value)) + 3


def list_entry(action: Action, value: str, kind: IndicatorType) -> str | None:
    """How a value is written in its list: a URL list holds URLs without their scheme, and cannot hold
    IPv6 or an entry Netskope's grammar refuses (None; cte_common.url_list); a file hash list holds the
    hash."""
    return url_list.list_entry(kind, value) if action == "url" else value


def entry_cost(action: Action, value: str, kind: IndicatorType) -> int:
    """What a value costs against its list's cap: the cost of its entry exactly as pushed (a value its
    URL list cannot hold is never pushed and takes no room: the sink leaves it out as invalid)."""
    return cost_bytes(url_list.entry_as_written(kind, value) if action == "url" else value)


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return 0.0


# Weights that put the chosen criterion first and the source's last sighting second.
_MAJOR = 1e10


def priority_of(kind: PriorityKind, indicator: Mapping[str, Any], entry: Mapping[str, Any]) -> float:
    """Larger is kept first when the list is full; newer sightings break ties."""
    newest = _epoch(entry.get("lastSeen"))
    if kind == "severity":
        return SEVERITY_RANK.get(Severity(entry.get("severity", "unknown")), 0) * _MAJOR + newest
    if kind == "reputation":
        return float(entry.get("reputation") or 0) * _MAJOR + newest
    if kind == "sources":
        return len(indicator.get("sources", ())) * _MAJOR + newest
    return newest


Outcome = Literal[
    "selected", "allow_listed", "inactive", "test", "not_from_source", "retracted", "type", "rule", "exception"
]


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    priority: float = 0.0
    cost: int = 0
    allow_entry: int | None = None

    @property
    def selected(self) -> bool:
        return self.outcome == "selected"


# Enum members by value: calling the enum costs about a microsecond, once per indicator and sharing.
_TYPES = {t.value: t for t in IndicatorType}


@dataclass
class Evaluator:
    """Decides for many indicators; compiles each rule's predicates once."""

    allow: AllowList = field(default_factory=lambda: AllowList(()))
    _compiled: dict[RuleDef, Any] = field(default_factory=dict)
    # The same rule object is asked for once per indicator and sharing: found by identity, since
    # hashing a rule hashes its whole filter tree. The entry holds the rule, so its id is not reused.
    _by_identity: dict[int, tuple[RuleDef, Any]] = field(default_factory=dict)

    def _predicates(self, rule: RuleDef) -> tuple[Any, list[tuple[Any, frozenset[str]]]]:
        hit = self._by_identity.get(id(rule))
        if hit is not None and hit[0] is rule:
            return hit[1]  # type: ignore[no-any-return]
        key = rule  # frozen and hashable: a changed rule is a new key
        if key not in self._compiled:
            self._compiled[key] = (
                compile_predicate(rule.node),
                [(compile_predicate(e.node) if e.node is not None else None, e.tags) for e in rule.exceptions],
            )
        self._by_identity[id(rule)] = (rule, self._compiled[key])
        return self._compiled[key]  # type: ignore[no-any-return]

    def decide(self, sharing: SharingDef, indicator: Mapping[str, Any]) -> Decision:
        """Whether ``indicator`` (the API's IndicatorOutWithSources shape) belongs in the sharing's list."""
        value, kind = indicator["value"], _TYPES.get(indicator["type"]) or IndicatorType(indicator["type"])
        if self.allow:
            hit = self.allow.match(value, kind)
            if hit is not None:
                return Decision("allow_listed", allow_entry=hit)
        if not indicator.get("active", True):
            return Decision("inactive")
        if indicator.get("test", False):
            return Decision("test")
        # A loop, not next() over a generator: this runs for every indicator and sharing of a batch.
        for entry in indicator.get("sources", ()):
            if entry["source"] == sharing.source:
                break
        else:
            return Decision("not_from_source")
        if entry.get("retracted"):
            return Decision("retracted")
        if not fits(sharing.action, kind):
            return Decision("type")
        matches, exceptions = self._predicates(sharing.rule)
        if not matches(indicator):
            return Decision("rule")
        for predicate, tags in exceptions:
            if predicate is not None and predicate(indicator):
                return Decision("exception")
            if tags and any(tags.intersection(s.get("tags", ())) for s in indicator.get("sources", ())):
                return Decision("exception")
        cost = entry_cost(sharing.action, value, kind)
        return Decision("selected", priority_of(sharing.priority, indicator, entry), cost)


# --- a list at its cap ------------------------------------------------------------------------------------


# A named tuple: the sink builds one per member of a list (up to a million) on every push.
class Candidate(NamedTuple):
    value: str
    priority: float
    cost: int


def order_key(c: Candidate) -> tuple[float, str]:
    """Highest priority first; the value breaks ties, so the order is total and the selection stable."""
    return (-c.priority, c.value)


_BY_VALUE = attrgetter("value")
_BY_PRIORITY = attrgetter("priority")


def select_within_cap(
    candidates: Sequence[Candidate], cap_bytes: int, max_entries: int = MAX_PUSH_ENTRIES
) -> tuple[list[Candidate], list[Candidate]]:
    """The top of the priority order that fits the cap (bytes as the reference counts them, plus one
    for the first entry), at most ``max_entries``; and what was left out. Like the reference, the cut is
    a prefix: the first candidate that does not fit ends the list, so membership does not churn."""
    # The order of order_key, in two stable sorts on C-level keys: several times faster than one
    # sort calling a Python function per candidate.
    ordered = sorted(candidates, key=_BY_VALUE)
    ordered.sort(key=_BY_PRIORITY, reverse=True)
    used = 1
    for n, c in enumerate(ordered):
        if n >= max_entries or used + c.cost > cap_bytes:
            return ordered[:n], ordered[n:]
        used += c.cost
    return ordered, []
