"""Indicator vocabulary shared by every service: types, severities and their orderings."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "HASH_LIST_TYPES",
    "SEVERITY_RANK",
    "URL_LIST_TYPES",
    "IndicatorType",
    "Severity",
]


class IndicatorType(StrEnum):
    URL = "url"
    DOMAIN = "domain"
    HOSTNAME = "hostname"
    FQDN = "fqdn"
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    MD5 = "md5"
    SHA256 = "sha256"


class Severity(StrEnum):
    UNKNOWN = "unknown"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_RANK: dict[Severity, int] = {s: i for i, s in enumerate(Severity)}

# Types a Netskope URL list can hold, and types a file hash list can hold.
URL_LIST_TYPES = frozenset(
    {
        IndicatorType.URL,
        IndicatorType.DOMAIN,
        IndicatorType.HOSTNAME,
        IndicatorType.FQDN,
        IndicatorType.IPV4,
        IndicatorType.IPV6,
    }
)
HASH_LIST_TYPES = frozenset({IndicatorType.MD5, IndicatorType.SHA256})
