"""The API's shapes and rules, without I/O: request models, validation, tokens, event building."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cte_common.canonical import InvalidIndicator, canonicalize
from cte_common.events import Criterion, IndicatorSighting, TagsStrategy
from cte_common.indicators import HASH_LIST_TYPES, IndicatorType, Severity
from cte_common.query import MATCH_ALL, Node, QueryError, parse_json, parse_text, referenced_tags, to_json, to_text
from cte_common.sharing import (
    Action,
    AllowKind,
    Candidate,
    Decision,
    FileTarget,
    PriorityKind,
    RuleDef,
    RuleException,
    SharingDef,
    UrlTarget,
    check_allow_pattern,
    parse_target,
    select_within_cap,
)
from cte_common.sightings import AgingCriteria, SourceConfiguration, make_sighting

SCOPES = ("cte_read", "cte_write")
JWT_ALGORITHM = "HS256"
PLUGINS = ("api_source", "netskope")

# The reference's error texts, which existing clients match on.
INVALID_CLIENT = "Invalid client_id/client_secret provided."
INVALID_TOKEN = "Could not validate credentials."  # noqa: S105 (a message, not a secret)
MISSING_SCOPE = "Not enough permissions."
GRANT_NOT_SUPPORTED = "grant_type not supported."

_hasher = PasswordHasher()


def _utc(value: datetime | None) -> datetime | None:
    # The reference stores naive UTC; a naive time from a client is read as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class IndicatorIn(BaseModel):
    """One indicator of a POST body, in the reference's field names."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # type is declared before value so the value's validator can canonicalise for it.
    type: IndicatorType
    value: str = Field(min_length=1, max_length=8192)
    source: str = Field(min_length=1, max_length=200)
    reputation: int = Field(default=5, ge=1, le=10)
    severity: Severity = Severity.UNKNOWN
    tags: list[str] = Field(default_factory=list, max_length=100)
    comments: str = Field(default="", max_length=10_000)
    extendedInformation: str = Field(default="", max_length=2048)
    firstSeen: datetime | None = None
    lastSeen: datetime | None = None
    expiresAt: datetime | None = None
    test: bool = False

    @field_validator("value")
    @classmethod
    def _canonical_value(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind is None:
            return value  # the type's own error is reported; no second guess here
        try:
            return canonicalize(kind, value)
        except InvalidIndicator as exc:
            raise ValueError(exc.reason) from None

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, tags: list[str]) -> list[str]:
        names = [t.strip() for t in tags]
        for name in names:
            if not 1 <= len(name) <= 500:
                raise ValueError("each tag name must be 1 to 500 characters")
        return list(dict.fromkeys(names))

    @field_validator("extendedInformation")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http or https URL with a host")
        return value

    @field_validator("firstSeen", "lastSeen", "expiresAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _seen_order(self) -> IndicatorIn:
        if self.firstSeen and self.lastSeen and self.firstSeen > self.lastSeen:
            raise ValueError("firstSeen must not be after lastSeen")
        return self


_INDICATOR_ADAPTER: TypeAdapter[IndicatorIn] = TypeAdapter(IndicatorIn)


def item_error(index: int, field: str | None, reason: str) -> dict[str, Any]:
    """One entry of a 422 body: FastAPI's loc/msg/type, plus the item index and field by name."""
    loc: list[Any] = ["body", index, *(field.split(".") if field else [])]
    return {"loc": loc, "msg": reason, "type": "value_error", "index": index, "field": field}


def validate_batch(raw: list[Any], known_sources: set[str]) -> tuple[list[IndicatorIn], list[dict[str, Any]]]:
    """Validate every item (nothing is written unless all are valid) and report every problem found."""
    items: list[IndicatorIn] = []
    errors: list[dict[str, Any]] = []
    for index, entry in enumerate(raw):
        try:
            item = _INDICATOR_ADAPTER.validate_python(entry)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or None
                errors.append(item_error(index, field, str(err["msg"]).removeprefix("Value error, ")))
            source = entry.get("source") if isinstance(entry, dict) else None
            if isinstance(source, str) and source.strip() and source.strip() not in known_sources:
                errors.append(item_error(index, "source", f"Configuration with name='{source}' does not exist."))
            continue
        if item.source not in known_sources:
            errors.append(item_error(index, "source", f"Configuration with name='{item.source}' does not exist."))
        items.append(item)
    return items, errors


def claimed_sources(raw: list[Any]) -> list[str]:
    """The source names a raw batch mentions, to look them up in one query before validating."""
    return sorted({e["source"].strip() for e in raw if isinstance(e, dict) and isinstance(e.get("source"), str)})


class ConfigurationIn(BaseModel):
    """A plugin configuration (Settings > Plugins), in the reference's field names."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    plugin: Literal["api_source", "netskope"]
    active: bool = True
    ageAfterDays: int = Field(default=90, ge=0, le=365)
    # When given, replaces ageAfterDays (which then only shows the reference's view).
    agingCriteria: AgingCriteria | None = None
    reputation: int = Field(default=0, ge=0, le=10)
    sslValidation: bool = True
    useProxy: bool = False
    tagsAggregateStrategy: TagsStrategy = "append"
    tenant: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tenant_for_netskope(self) -> ConfigurationIn:
        if self.plugin == "netskope" and not self.tenant:
            raise ValueError("a netskope configuration needs a tenant")
        return self


# What ingest needs to know of a source configuration.
ConfigurationRow = SourceConfiguration


def configuration_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "plugin": row["plugin"],
        "active": row["active"],
        "ageAfterDays": row["age_after_days"],
        "agingCriteria": row.get("aging"),
        "reputation": row["reputation"],
        "sslValidation": row["ssl_validation"],
        "useProxy": row["use_proxy"],
        "tagsAggregateStrategy": row["tags_aggregate_strategy"],
        "tenant": row["tenant"],
        "parameters": row["parameters"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def build_sighting(
    item: IndicatorIn, config: ConfigurationRow, criterion: Criterion, now: datetime
) -> IndicatorSighting:
    """Resolve the configuration's effects (Override Reputation, Aging Criteria) into the event."""
    first_seen = item.firstSeen or item.lastSeen or now
    return make_sighting(
        value=item.value,
        kind=item.type,
        config=config,
        criterion=criterion,
        now=now,
        first_seen=first_seen,
        last_seen=item.lastSeen or max(first_seen, now),
        expires_at=item.expiresAt,
        reputation=item.reputation,
        severity=item.severity,
        tags=item.tags,
        comments=item.comments,
        extended_information=item.extendedInformation,
        test=item.test,
        from_api=True,
    )


def sighting_out(ev: IndicatorSighting) -> dict[str, Any]:
    """The accepted indicator in the reference's output shape, as the sighting describes it."""
    source = {
        "source": ev.source,
        "internalHits": int(ev.internal),
        "externalHits": int(not ev.internal),
        "firstSeen": ev.first_seen,
        "lastSeen": ev.last_seen,
        "reputation": ev.reputation,
        "severity": ev.severity,
        "comments": ev.comments,
        "extendedInformation": ev.extended_information,
        "tags": ev.tags,
        "destinations": [],
        "retracted": False,
        "retractionDestinations": [],
    }
    return {
        "value": ev.value,
        "type": ev.type,
        "test": ev.test,
        "safe": False,
        "active": ev.expires_at is None or ev.expires_at > ev.occurred_at,
        "internalHits": int(ev.internal),
        "externalHits": int(not ev.internal),
        "expiresAt": ev.expires_at,
        "source": ev.source,
        "sharedWith": [],
        "tags": ev.tags,
        "firstSeen": ev.first_seen,
        "lastSeen": ev.last_seen,
        "reputation": ev.reputation,
        "severity": ev.severity,
        "comments": ev.comments,
        "extendedInformation": ev.extended_information,
        "sources": [source],
    }


def indicator_out(row: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    """A read-model row and its source rows in the reference's IndicatorOutWithSources shape."""
    source_out = [
        {
            "source": s["source"],
            "internalHits": s["internal_hits"],
            "externalHits": s["external_hits"],
            "firstSeen": s["first_seen"],
            "lastSeen": s["last_seen"],
            "reputation": s["reputation"],
            "severity": s["severity"],
            "comments": s["comments"],
            "extendedInformation": s["extended_information"],
            "tags": list(s["tags"]),
            "destinations": [],
            "retracted": s["retracted"],
            "retractionDestinations": [],
        }
        for s in sources
    ]
    return {
        "value": row["value"],
        "type": row["type"],
        "test": row["test"],
        "safe": row["safe"],
        "active": row["active"],
        "internalHits": row["internal_hits"],
        "externalHits": row["external_hits"],
        "expiresAt": row["expires_at"],
        "source": row["source"],
        "sharedWith": list(row["shared_with"]),
        "tags": list(dict.fromkeys(t for s in sources for t in s["tags"])),
        "firstSeen": row["first_seen"],
        "lastSeen": row["last_seen"],
        "reputation": row["reputation"],
        "severity": row["severity"],
        "comments": row["comments"],
        "extendedInformation": row["extended_information"],
        "sources": source_out,
    }


# Sort keys of the reference's GET /indicators/, mapped to SQL over indicators i. Per-source
# fields sort like MongoDB sorts arrays: by the smallest element ascending, the largest descending.
SORT_FIELDS: dict[str, tuple[str, str]] = {
    "value": ("i.value", "i.value"),
    "type": ("i.type", "i.type"),
    "test": ("i.test", "i.test"),
    "active": ("i.active", "i.active"),
    "internalHits": ("i.internal_hits", "i.internal_hits"),
    "externalHits": ("i.external_hits", "i.external_hits"),
    "expiresAt": ("i.expires_at", "i.expires_at"),
    "sources.source": (
        "(SELECT min(source) FROM indicator_sources s WHERE s.value = i.value)",
        "(SELECT max(source) FROM indicator_sources s WHERE s.value = i.value)",
    ),
    "sources.comments": (
        "(SELECT min(comments) FROM indicator_sources s WHERE s.value = i.value)",
        "(SELECT max(comments) FROM indicator_sources s WHERE s.value = i.value)",
    ),
    "sources.reputation": (
        "(SELECT min(reputation) FROM indicator_sources s WHERE s.value = i.value)",
        "(SELECT max(reputation) FROM indicator_sources s WHERE s.value = i.value)",
    ),
    # Both seen-times are kept as min/max over sources on the indicator row, and indexed there.
    "sources.firstSeen": ("i.first_seen", "i.first_seen"),
    "sources.lastSeen": ("i.last_seen", "i.last_seen"),
    "sources.severity": (
        "(SELECT min(array_position(ARRAY['unknown','low','medium','high','critical'], severity))"
        " FROM indicator_sources s WHERE s.value = i.value)",
        "(SELECT max(array_position(ARRAY['unknown','low','medium','high','critical'], severity))"
        " FROM indicator_sources s WHERE s.value = i.value)",
    ),
}


def sort_clause(sort: str | None, ascending: bool) -> str:
    """ORDER BY text from the whitelist; an unknown field means no sort, as in the reference.

    The value breaks ties in the same direction, so (column, value) indexes serve the sort, forwards or
    backwards, and pages are stable. NULLs (only expiresAt has them) sort as PostgreSQL's index does:
    last ascending, first descending.
    """
    if not sort or sort not in SORT_FIELDS:
        return "ORDER BY i.value"
    asc_expr, desc_expr = SORT_FIELDS[sort]
    if ascending:
        return f"ORDER BY {asc_expr} ASC, i.value ASC"
    return f"ORDER BY {desc_expr} DESC, i.value DESC"


# Tokens and client secrets


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(secret_hash, secret)
    except VerificationError:
        return False


def issue_token(client_id: str, scopes: list[str], key: str, ttl: timedelta, now: datetime) -> str:
    claims = {"sub": client_id, "scopes": scopes, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHM)


class TokenClaims(BaseModel):
    sub: str
    scopes: list[str]


def read_token(token: str, key: str) -> TokenClaims | None:
    """The token's claims, or None if it is forged, malformed or expired."""
    try:
        claims = jwt.decode(token, key, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]})
        return TokenClaims.model_validate(claims)
    except (jwt.PyJWTError, ValueError):
        return None


def granted_scopes(requested: str | None, allowed: list[str]) -> list[str] | None:
    """Scopes for a new token: all the client's when none are asked for; None if asked for more."""
    if not requested or not requested.strip():
        return list(allowed)
    asked = requested.replace(",", " ").split()
    if not set(asked) <= set(allowed):
        return None
    return list(dict.fromkeys(asked))


# Single-indicator updates and bulk edits


class RetractionIn(BaseModel):
    """The retraction body of PATCH /api/cte/indicators/."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    value: str = Field(min_length=1, max_length=8192)
    source: str = Field(min_length=1, max_length=200)
    retracted: bool


class QueryLocator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | dict[str, Any]


class ValuesLocator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: list[str] = Field(min_length=1, max_length=100_000)
    source: str | None = None


class TagChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(default_factory=list, max_length=100)
    remove: list[str] = Field(default_factory=list, max_length=100)


class BulkEditIn(BaseModel):
    """PATCH /api/cte/indicators/bulk: a locator and the tags to add and remove."""

    model_config = ConfigDict(extra="forbid")

    locator: QueryLocator | ValuesLocator
    tags: TagChanges = Field(default_factory=TagChanges)


class BulkDeleteIn(BaseModel):
    """DELETE /api/cte/indicators/bulk: by query or by values, as in the reference."""

    model_config = ConfigDict(extra="forbid")

    query: str | dict[str, Any] | None = None
    values: list[str] | None = Field(default=None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _one_locator(self) -> BulkDeleteIn:
        if (self.query is None) == (self.values is None):
            raise ValueError("give exactly one of query and values")
        return self


def value_candidates(value: str) -> list[str]:
    """Spellings under which ``value`` may be stored: as given, and its canonical form for each type.

    Lets a client address an indicator the way it posted it (``WWW.Example.com``) although the
    canonical form is what is stored.
    """
    found = [value.strip()]
    for kind in IndicatorType:
        try:
            found.append(canonicalize(kind, value))
        except InvalidIndicator:
            continue
    return list(dict.fromkeys(found))


# Tags


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=500)
    color: str = Field(default="#969696", pattern=r"^#[0-9A-Fa-f]{6}$")


class TagName(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=500)


def applied_on(count: int, total: int) -> str:
    """The reference's appliedOn: whether the tag is on none, some or all of the filtered indicators."""
    if count == 0:
        return "none"
    return "all" if count == total else "some"


# Configurations and tenants


class NetskopeParameters(BaseModel):
    """Parameters of the Netskope plugin as a source (alert polling)."""

    model_config = ConfigDict(extra="forbid")

    enablePolling: bool = False
    threatDataTypes: Literal["Malware", "URL", "Both"] = "Both"
    initialRangeDays: int = Field(default=7, ge=0, le=365)


def check_parameters(plugin: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Validate a plugin's parameters; the API Source has none."""
    if plugin == "netskope":
        return NetskopeParameters.model_validate(parameters).model_dump()
    if parameters:
        raise ValueError("the api_source plugin takes no parameters")
    return {}


class ConfigurationPatch(BaseModel):
    """Fields of a configuration that an update may change (not its name or plugin)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    active: bool | None = None
    ageAfterDays: int | None = Field(default=None, ge=0, le=365)
    agingCriteria: AgingCriteria | None = None
    reputation: int | None = Field(default=None, ge=0, le=10)
    sslValidation: bool | None = None
    useProxy: bool | None = None
    tagsAggregateStrategy: TagsStrategy | None = None
    tenant: str | None = None
    parameters: dict[str, Any] | None = None


CONFIG_COLUMNS = {
    "active": "active",
    "ageAfterDays": "age_after_days",
    "agingCriteria": "aging",
    "reputation": "reputation",
    "sslValidation": "ssl_validation",
    "useProxy": "use_proxy",
    "tagsAggregateStrategy": "tags_aggregate_strategy",
    "tenant": "tenant",
    "parameters": "parameters",
}


class TenantIn(BaseModel):
    """Settings > Netskope Tenant. ``tenantName`` is the tenant's name (``acme`` for acme.goskope.com)
    or its full base URL (for a tenant on another domain, or the fake tenant in tests)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # No "/": the name is part of every list key (tenant/action/list).
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/]+$")
    tenantName: str = Field(min_length=1, max_length=500)
    v1Token: str | None = Field(default=None, min_length=1, max_length=2000)
    v2Token: str | None = Field(default=None, min_length=1, max_length=2000)
    initialRangeDays: int = Field(default=7, ge=0, le=365)
    useSystemProxy: bool = False

    @field_validator("tenantName")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        if "://" in value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("a tenant URL must be http(s)://host[:port]")
            return value.rstrip("/")
        if value.endswith(".goskope.com"):
            raise ValueError("give the tenant name without goskope.com")
        return value


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenantName: str | None = Field(default=None, min_length=1, max_length=500)
    v1Token: str | None = Field(default=None, min_length=1, max_length=2000)
    v2Token: str | None = Field(default=None, min_length=1, max_length=2000)
    initialRangeDays: int | None = Field(default=None, ge=0, le=365)
    useSystemProxy: bool | None = None


def tenant_base_url(tenant_name: str) -> str:
    return tenant_name if "://" in tenant_name else f"https://{tenant_name}.goskope.com"


def tenant_out(row: dict[str, Any]) -> dict[str, Any]:
    """A tenant as the API shows it: whether tokens are set, never the tokens."""
    return {
        "name": row["name"],
        "tenantName": row["tenant_name"],
        "url": row["base_url"],
        "hasV1Token": row["v1_token_encrypted"] is not None,
        "hasV2Token": row["v2_token_encrypted"] is not None,
        "initialRangeDays": row["initial_range_days"],
        "useSystemProxy": row["use_proxy"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


# API tokens (Settings > Users > API Tokens)

ADMIN_SCOPES = ("settings_read", "settings_write")
Scope = Literal["cte_read", "cte_write", "settings_read", "settings_write"]
ALL_SCOPES = (*SCOPES, *ADMIN_SCOPES)
# Sign-in throttling: this many consecutive failures lock the client for LOCK_MINUTES.
MAX_FAILED_SIGNINS = 5
LOCK_MINUTES = 5
ACCOUNT_LOCKED = "This account has been locked due to too many failed attempts. Try again later."


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    description: str = Field(default="", max_length=500)
    # Minutes until the credentials expire; none (or negative, as in the reference) means never.
    expireAfter: int | None = None
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["cte_read", "cte_write"]))


class ClientRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=100)


def token_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "client_id": row["client_id"],
        "description": row["description"],
        "scopes": list(row["scopes"]),
        "createdAt": row["created_at"],
        "expiresAt": row["expires_at"],
        "revoked": row["revoked_at"] is not None,
        "lastUsedAt": row["last_used_at"],
    }


# Dashboards

# group_by fields of the reference, to (SQL expression, the key in "_id", needs the sources join).
GROUP_FIELDS: dict[str, tuple[str, str, bool]] = {
    "value": ("i.value", "value", False),
    "type": ("i.type", "type", False),
    "test": ("i.test", "test", False),
    "active": ("i.active", "active", False),
    "internalHits": ("i.internal_hits", "internalHits", False),
    "externalHits": ("i.external_hits", "externalHits", False),
    "expiresAt": ("i.expires_at", "expiresAt", False),
    "sources.source": ("s.source", "source", True),
    "sources.comments": ("s.comments", "comments", True),
    "sources.reputation": ("s.reputation", "reputation", True),
    "sources.firstSeen": ("s.first_seen", "firstSeen", True),
    "sources.lastSeen": ("s.last_seen", "lastSeen", True),
}


def dashboard_query(group_by: list[str], count_by: str | None, where: str, limit_param: str) -> str:
    """SQL of GET /api/cte/dashboards/: group the filtered indicators and count (or sum hits).

    Per-source fields group per source entry (MongoDB would group by the whole array of values); an
    indicator then counts once in each of its sources' groups.
    """
    unknown = [g for g in group_by if g not in GROUP_FIELDS]
    if unknown:
        raise ValueError(f"group_by: unknown field {unknown[0]!r}; allowed: {', '.join(GROUP_FIELDS)}")
    if count_by not in (None, "internalHits", "externalHits"):
        raise ValueError("count_by: must be internalHits or externalHits")
    fields = [GROUP_FIELDS[g] for g in group_by]
    per_source = any(f[2] for f in fields)
    if count_by is None and "value" in group_by:
        count_by = "externalHits"  # the reference's default when grouping by value
    column = {"internalHits": "internal_hits", "externalHits": "external_hits"}.get(count_by or "")
    if column is None:
        measure = "count(DISTINCT i.value)" if per_source else "count(*)"
    else:
        measure = f"sum({'s' if per_source else 'i'}.{column})::bigint"
    keys = ", ".join(f"{expr} AS k{n}" for n, (expr, _, _) in enumerate(fields)) or "NULL AS k0"
    group = ", ".join(f"k{n}" for n in range(len(fields))) or "k0"
    join = "JOIN indicator_sources s ON s.value = i.value" if per_source else ""
    return (
        f"SELECT {keys}, {measure} AS count FROM indicators i {join} WHERE {where} "
        f"GROUP BY {group} ORDER BY count {{direction}}, {group} LIMIT {limit_param}"
    )


def dashboard_ids(group_by: list[str]) -> list[str]:
    return [GROUP_FIELDS[g][1] for g in group_by]


# Settings > Threat Exchange


class CteSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criterion: Criterion | None = None
    deleteInactiveIndicators: bool | None = None


def cte_settings_out(row: dict[str, Any]) -> dict[str, Any]:
    return {"criterion": row["criterion"], "deleteInactiveIndicators": row["delete_inactive_indicators"]}


# Business rules (Threat Exchange > Business Rules)

DEFAULT_RULE = "All"  # seeded by the migration (filter {}); it cannot be deleted
MAX_FILTER_CHARS = 100_000


class FiltersIn(BaseModel):
    """A filter in the reference's readable query form or its Mongo-style JSON form (a JSON string, as
    the reference stores it, or an object)."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(default=None, max_length=MAX_FILTER_CHARS)
    mongo: str | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FiltersIn:
        if (self.query is None) == (self.mongo is None):
            raise ValueError("filters: give exactly one of query and mongo")
        return self


class ExceptionIn(BaseModel):
    """An exception of a rule: indicators it matches (by query, or by any of the tags) are not shared."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    filters: FiltersIn | None = None
    tags: list[str] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_kind(self) -> ExceptionIn:
        if (self.filters is None) == (self.tags is None):
            raise ValueError(f"exception '{self.name}': give exactly one of filters and tags")
        return self


def _unique_exception_names(exceptions: list[ExceptionIn] | None) -> None:
    names = [e.name for e in exceptions or ()]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ValueError(f"exceptions: two exceptions are named '{duplicate}'")


def _rule_name(name: str) -> str:
    if "/" in name:
        raise ValueError("must not contain '/' (the name is part of the rule's URL)")
    return name


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    filters: FiltersIn
    exceptions: list[ExceptionIn] = Field(default_factory=list, max_length=100)
    muted: bool = False
    unmuteAt: datetime | None = None

    _name = field_validator("name")(_rule_name)

    @field_validator("unmuteAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _check(self) -> RuleIn:
        if self.muted:
            raise ValueError("muted: a rule cannot be created muted; create it, then mute it with PATCH")
        _unique_exception_names(self.exceptions)
        return self


class RulePatch(BaseModel):
    """What PATCH /business_rules/{name} may change; a given field replaces the stored one whole."""

    model_config = ConfigDict(extra="forbid")

    filters: FiltersIn | None = None
    exceptions: list[ExceptionIn] | None = Field(default=None, max_length=100)
    muted: bool | None = None
    unmuteAt: datetime | None = None

    @field_validator("unmuteAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _check(self) -> RulePatch:
        _unique_exception_names(self.exceptions)
        return self


class RuleName(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)

    _name = field_validator("name")(_rule_name)


def parse_rule_filter(filters: FiltersIn, where: str) -> tuple[Node, str]:
    """The filter's AST and its readable text (as given, or rendered from the JSON form).

    Raises QueryError whose message starts with ``where`` (``filters.query: position 3: ...``).
    """
    if filters.query is not None:
        try:
            return parse_text(filters.query), filters.query
        except QueryError as exc:
            raise QueryError(f"{where}.query: {exc.message}", position=exc.position) from None
    assert filters.mongo is not None
    node = parse_json(filters.mongo, root=f"{where}.mongo")
    return node, to_text(node)


def rule_columns(filters: FiltersIn) -> dict[str, Any]:
    """The stored form of a rule's filter: canonical JSON, and the text it was written in."""
    node, text = parse_rule_filter(filters, "filters")
    return {"filter": to_json(node), "filter_text": text}


def stored_exceptions(exceptions: list[ExceptionIn]) -> list[dict[str, Any]]:
    """Exceptions as stored: ``{name, filter: canonical JSON | null, tags: [...]}``."""
    out = []
    for n, exc in enumerate(exceptions):
        node = None
        if exc.filters is not None:
            node, _ = parse_rule_filter(exc.filters, f"exceptions[{n}].filters")
            if node == MATCH_ALL:
                raise QueryError(f"exceptions[{n}].filters: an exception that matches everything would share nothing")
        tags = list(dict.fromkeys(exc.tags or ()))
        out.append({"name": exc.name, "filter": to_json(node) if node is not None else None, "tags": tags})
    return out


def exception_tags(exceptions: list[dict[str, Any]]) -> list[str]:
    return sorted({t for e in exceptions for t in e["tags"]})


def _filters_out(stored: dict[str, Any], text: str | None) -> dict[str, str]:
    node = parse_json(stored)
    return {"query": text if text is not None else to_text(node), "mongo": json.dumps(stored)}


def rule_muted(row: Mapping[str, Any], now: datetime) -> bool:
    """Muted until unmuteAt: once that time passes the rule counts as unmuted, as after the reference's
    unmute task."""
    return bool(row["muted"]) and (row["unmute_at"] is None or row["unmute_at"] > now)


def rule_out(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    exceptions = []
    for e in row["exceptions"]:
        entry: dict[str, Any] = {"name": e["name"]}
        if e.get("filter") is not None:
            entry["filters"] = _filters_out(e["filter"], None)
        else:
            entry["tags"] = list(e["tags"])
        exceptions.append(entry)
    muted = rule_muted(row, now)
    return {
        "name": row["name"],
        "filters": _filters_out(row["filter"], row["filter_text"]),
        "exceptions": exceptions,
        "muted": muted,
        "unmuteAt": row["unmute_at"] if muted else None,
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def rule_def(row: Mapping[str, Any]) -> RuleDef:
    """The stored rule as the evaluator (shared with the rule-engine) takes it."""
    return RuleDef(
        name=row["name"],
        node=parse_json(row["filter"]),
        exceptions=tuple(
            RuleException(
                name=e["name"],
                node=parse_json(e["filter"]) if e.get("filter") is not None else None,
                tags=frozenset(e.get("tags") or ()),
            )
            for e in row["exceptions"]
        ),
        muted=row["muted"],
        unmute_at=row["unmute_at"],
    )


def rule_uses_tag(row: Mapping[str, Any], tag: str) -> bool:
    """Whether the rule's filter or one of its exceptions (by tags or by filter) names ``tag``."""
    if tag in referenced_tags(parse_json(row["filter"])):
        return True
    for e in row["exceptions"]:
        if tag in (e.get("tags") or ()):
            return True
        if e.get("filter") is not None and tag in referenced_tags(parse_json(e["filter"])):
            return True
    return False


def mute_problem(muted: bool, unmute_at: datetime | None, now: datetime) -> str | None:
    """Why a rule cannot be muted like this (the reference: unmuteAt is required and in the future)."""
    if muted and (unmute_at is None or unmute_at <= now):
        return "unmuteAt: muting a rule needs an unmuteAt in the future"
    return None


# Rule test (GET /business_rules/{name}/test)


def rule_test_action(kind: str) -> Action:
    """The target a type goes to: hashes to a file hash list, everything else to a URL list."""
    return "file" if IndicatorType(kind) in HASH_LIST_TYPES else "url"


def rule_test_source(indicator: Mapping[str, Any], since: datetime) -> str | None:
    """With no source given, the source entry that would share the indicator: one seen since ``since``,
    preferably not retracted (a sharing always names one source)."""
    recent = [s for s in indicator["sources"] if s["lastSeen"] is not None and s["lastSeen"] > since]
    recent.sort(key=lambda s: bool(s["retracted"]))
    return recent[0]["source"] if recent else None


@dataclass
class RuleTestTally:
    """The reference's rule test answer: how many indicators, and how many bytes, per target type."""

    hash_count: int = 0
    hash_size: int = 0
    url_count: int = 0
    url_size: int = 0

    def add(self, action: Action, decision: Decision) -> None:
        if not decision.selected:
            return
        if action == "file":
            self.hash_count += 1
            self.hash_size += decision.cost
        else:
            self.url_count += 1
            self.url_size += decision.cost

    def out(self) -> dict[str, int]:
        return {
            "hash_count": self.hash_count,
            "hash_size": self.hash_size,
            "url_count": self.url_count,
            "url_size": self.url_size,
        }


def ad_hoc_sharing(rule: RuleDef, source: str, action: Action) -> SharingDef:
    """A sharing that exists only to ask the evaluator about a rule (no list, no cap)."""
    return SharingDef(id=0, source=source, rule=rule, action=action, list_key="", cap_bytes=0)


# Allow-list


class AllowEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AllowKind
    pattern: str = Field(min_length=1, max_length=2048)
    comment: str = Field(default="", max_length=2000)


# Types tried, in order, to find the canonical spelling of an exact allow-list value.
_EXACT_TYPES = (
    IndicatorType.MD5,
    IndicatorType.SHA256,
    IndicatorType.IPV4,
    IndicatorType.IPV6,
    IndicatorType.DOMAIN,
    IndicatorType.URL,
)


def allow_pattern(kind: AllowKind, pattern: str) -> str:
    """The pattern to store, validated and normalised; ValueError names the problem.

    An exact value is stored in its canonical spelling when it is a valid indicator of some type (the
    identity indicators are stored under); a suffix must be a DNS name, stored in its A-label form.
    """
    try:
        normal = check_allow_pattern(kind, pattern)
    except ValueError as exc:
        what = "regular expression" if kind == "regex" else f"{kind} pattern"
        raise ValueError(f"pattern: not a valid {what} ({exc})") from None
    if kind == "exact":
        for indicator_type in _EXACT_TYPES:
            try:
                return canonicalize(indicator_type, normal)
            except InvalidIndicator:
                continue
    if kind == "suffix":
        try:
            normal = canonicalize(IndicatorType.DOMAIN, normal)
        except InvalidIndicator as exc:
            raise ValueError(f"pattern: not a domain suffix ({exc.reason})") from None
        if normal.startswith("*."):
            raise ValueError("pattern: not a domain suffix (a wildcard inside the name)")
    if not normal:
        raise ValueError("pattern: empty")
    return normal


def allow_entry_out(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "kind": row["kind"],
        "pattern": row["pattern"],
        "comment": row["comment"],
        "createdAt": row["created_at"],
    }
    if "hits" in row:
        out["hits"] = row["hits"]
        out["lastHitAt"] = row["last_hit_at"]
    return out


# Sharing configurations (Threat Exchange > Sharing)

ACTION_LABELS: dict[str, str] = {"url": "Add to URL List", "file": "Add to File Hash List"}
API_SOURCE_DESTINATION = "an API Source can only push; it cannot be a destination"
DRY_RUN_SAMPLE = 100


class ActionIn(BaseModel):
    """The reference's Action object: ``{"label": "Add to URL List", "value": "url", "parameters": {...}}``."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)
    value: Action
    parameters: dict[str, Any] = Field(default_factory=dict)


class SharingIn(BaseModel):
    """A sharing configuration: the target as ``action`` + ``parameters``, or as the reference's ``target``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sourceConfiguration: str = Field(min_length=1, max_length=200)
    businessRule: str = Field(min_length=1, max_length=200)
    destinationConfiguration: str = Field(min_length=1, max_length=200)
    action: Action | None = None
    parameters: dict[str, Any] | None = None
    target: ActionIn | None = None
    priority: PriorityKind = "lastSeen"

    @model_validator(mode="after")
    def _one_target(self) -> SharingIn:
        if self.target is not None and (self.action is not None or self.parameters is not None):
            raise ValueError("target: give either action and parameters, or target, not both")
        if self.target is None and self.action is None:
            raise ValueError("action: required ('url' or 'file'), or give the reference's target object")
        return self

    def resolved(self) -> tuple[Action, dict[str, Any]]:
        if self.target is not None:
            return self.target.value, self.target.parameters
        assert self.action is not None
        return self.action, self.parameters or {}


class SharingPatch(BaseModel):
    """What PATCH /sharing/{id} may change. ``parameters`` replaces the stored parameters whole."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    businessRule: str | None = Field(default=None, min_length=1, max_length=200)
    parameters: dict[str, Any] | None = None
    priority: PriorityKind | None = None


def target_problems(action: Action, parameters: Mapping[str, Any]) -> tuple[UrlTarget | FileTarget | None, list[str]]:
    """The parsed target, or what is wrong with the parameters (each message names its field)."""
    try:
        return parse_target(action, parameters), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(f"parameters.{loc}: {msg}" if loc else f"parameters.{msg}")
        return None, problems


def sharing_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "sourceConfiguration": row["source"],
        "businessRule": row["rule"],
        "destinationConfiguration": row["destination"],
        "action": row["action"],
        "parameters": row["parameters"],
        "target": {"label": ACTION_LABELS[row["action"]], "value": row["action"], "parameters": row["parameters"]},
        "priority": row["priority"],
        "listKey": row["list_key"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def sharing_def(row: Mapping[str, Any], rule: Mapping[str, Any]) -> SharingDef:
    target = parse_target(row["action"], row["parameters"])
    return SharingDef(
        id=row["id"],
        source=row["source"],
        rule=rule_def(rule),
        action=row["action"],
        list_key=row["list_key"],
        cap_bytes=target.cap_bytes,
        priority=row["priority"],
    )


@dataclass
class DryRun:
    """What a sharing would hold, against what the sink wants its list to hold now."""

    selected: list[Candidate] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)

    def add(self, value: str, decision: Decision) -> None:
        if decision.selected:
            self.selected.append(Candidate(value, decision.priority, decision.cost))
        else:
            self.excluded[decision.outcome] += 1

    def out(self, cap_bytes: int, current: list[Candidate]) -> dict[str, Any]:
        """``current``: the sink's desired members of the list; both sides are cut at the same cap."""
        kept, left_out = select_within_cap(self.selected, cap_bytes)
        held, _ = select_within_cap(current, cap_bytes)
        kept_values = {c.value for c in kept}
        held_values = {c.value for c in held}
        add = [c.value for c in kept if c.value not in held_values]
        remove = [c.value for c in held if c.value not in kept_values]
        return {
            "selected": len(kept),
            "selectedBytes": sum(c.cost for c in kept),
            "wouldAdd": add[:DRY_RUN_SAMPLE],
            "wouldAddCount": len(add),
            "wouldRemove": remove[:DRY_RUN_SAMPLE],
            "wouldRemoveCount": len(remove),
            "leftOutByCap": [c.value for c in left_out[:DRY_RUN_SAMPLE]],
            "leftOutByCapCount": len(left_out),
            "excluded": dict(sorted(self.excluded.items())),
        }


# Re-evaluations (the rule-engine's progress)


def reevaluation_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "reason": row["reason"],
        "requestedAt": row["requested_at"],
        "startedAt": row["started_at"],
        "finishedAt": row["finished_at"],
        "processed": row["processed"],
        "total": row["total"],
    }
