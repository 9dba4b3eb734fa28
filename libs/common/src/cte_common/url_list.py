"""What a Netskope URL list (type ``exact``) can hold: the entry an indicator becomes, and why an entry
would be refused ("Invalid host" / "Invalid Path" on the tenant), decided before anything is pushed.

The rules are Netskope's documented ones ("URL List Best Practices": URL Supported Formats, the valid and
invalid URL examples, IP address ranges and CIDR validation); tests/data/netskope_url_grammar.json holds
each documented example, and tests/unit/test_url_grammar.py checks that this module, the canonicaliser
and the fake tenant classify every one of them as the documentation does.
"""

from __future__ import annotations

import ipaddress
import re

import idna

from cte_common.canonical import IPV4_OCTET
from cte_common.indicators import IndicatorType

__all__ = [
    "PLAIN_ENTRY_RE",
    "entry_as_written",
    "is_plain_entry",
    "list_entry",
    "url_list_entry_problem",
    "url_list_entry_problem_in_full",
]

# The tenant ignores an http(s) scheme; anything else with "://" is no URL it takes.
_IGNORED_SCHEME_RE = re.compile(r"https?://", re.IGNORECASE)
_DROPPED_SCHEME_RE = re.compile(r"(?:https?|ftp)://", re.IGNORECASE)
_OTHER_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# authority, then whatever follows it (path, query, fragment).
_SPLIT_RE = re.compile(r"(?P<authority>[^/?#]*)(?P<rest>.*)", re.DOTALL)
# Path, query and fragment: unreserved, %XX and the delimiters !$&'()+,;= (the '*' is the wildcard's),
# with the separators / ? # : @.
_REST_RE = re.compile(r"(?:[-\w.~!$&'()+,;=:@/?#]|%[0-9a-fA-F]{2})*", re.ASCII)
_LDH_LABEL_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")
_DOTTED_QUAD_RE = re.compile(r"[0-9]+(?:\.[0-9]+){3}")
_CIDR_RE = re.compile(r"/[0-9]+")
_NO_ADDRESS = ipaddress.IPv4Address("0.0.0.0")  # noqa: S104 (a value compared with, never bound)
# The shape of almost every entry a feed brings, lower case as the canonicaliser writes it: an optional
# http(s) scheme, then a host name of LDH labels whose last label begins with a letter and which does
# not begin with a dotted quad and a dash (an IP range), no port, and an optional path as _REST_RE takes
# it; or an IPv4 address alone but 0.0.0.0, written as ipaddress reads it (no leading zero). Every entry
# it matches (with no punycode label and a host at most 253 long, checked apart) is one the checks below
# take, in one match instead of a dozen; any other entry goes through them. tests/unit/test_url_grammar.py
# holds the two together.
PLAIN_ENTRY_RE = re.compile(
    r"(?:https?://)?(?:"
    r"(?P<host>(?![0-9]+(?:\.[0-9]+){3}-)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?)"
    r"(?:/(?:[-\w.~!$&'()+,;=:@/?#]|%[0-9a-fA-F]{2})*)?"
    rf"|(?!0\.0\.0\.0\Z)(?:{IPV4_OCTET}\.){{3}}{IPV4_OCTET})",
    re.ASCII,
)


def entry_as_written(kind: IndicatorType, value: str) -> str:
    """How a canonical indicator value is written in a URL list, whether the list can hold it or not: a
    URL loses its http, https or ftp scheme (the tenant ignores it). The SQL function ``list_entry``
    (migration 0018) writes the same; tests/component/test_url_precheck.py holds the two together."""
    if kind == IndicatorType.URL and (scheme := _DROPPED_SCHEME_RE.match(value)):
        return value[scheme.end() :]
    return value


def list_entry(kind: IndicatorType, value: str) -> str | None:
    """The entry a canonical indicator value becomes in a URL list (a URL loses its scheme, which the
    tenant ignores), or None when the list cannot hold it (IPv6, or refused by the pre-check)."""
    if kind == IndicatorType.IPV6:
        return None
    entry = entry_as_written(kind, value)
    return entry if url_list_entry_problem(entry) is None else None


def url_list_entry_problem(entry: str) -> str | None:
    """Why the tenant would refuse ``entry`` in an ``exact`` URL list, or None when it takes it."""
    return None if is_plain_entry(entry) else url_list_entry_problem_in_full(entry)


def is_plain_entry(entry: str) -> bool:
    """Whether ``entry`` has the plain shape of PLAIN_ENTRY_RE (every check takes it)."""
    plain = PLAIN_ENTRY_RE.fullmatch(entry)
    return (
        plain is not None
        and plain.end("host") - plain.start("host") <= 253  # (-1 - -1 for an address)
        and "xn--" not in entry
    )


def url_list_entry_problem_in_full(entry: str) -> str | None:
    """url_list_entry_problem by every check, without the plain shape's shortcut."""
    if not entry or not entry.isascii() or not entry.isprintable() or " " in entry:
        return "Invalid host: empty, or with spaces, control or non-ASCII characters"
    if scheme := _IGNORED_SCHEME_RE.match(entry):
        entry = entry[scheme.end() :]
    elif _OTHER_SCHEME_RE.match(entry):
        return "Invalid host: a scheme other than http or https"
    parts = _SPLIT_RE.fullmatch(entry)
    assert parts is not None  # the pattern matches any text
    authority, rest = parts["authority"], parts["rest"]
    if "*" in rest or not _REST_RE.fullmatch(rest):
        return "Invalid Path"
    if "@" in authority:
        return "Invalid host: user information"
    if authority.count(":") > 1 or authority.startswith("["):
        return "Invalid host: IPv6"
    host, has_port, port = authority.partition(":")
    if has_port and not (port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        return "Invalid port"
    if "-" in host and _DOTTED_QUAD_RE.fullmatch(host.partition("-")[0]):
        return _range_problem(host, bool(has_port or rest))
    if _DOTTED_QUAD_RE.fullmatch(host) or host.replace(".", "").isdigit():
        return _address_problem(host, bool(has_port), rest)
    return _name_problem(host)


def _range_problem(host: str, followed: bool) -> str | None:
    try:
        first, last = (ipaddress.IPv4Address(end) for end in host.split("-"))
    except ValueError:
        return "Invalid IP range"
    if followed or _NO_ADDRESS in (first, last) or first >= last:
        return "Invalid IP range"
    return None


def _address_problem(host: str, has_port: bool, rest: str) -> str | None:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        return "Invalid host: not an IPv4 address"
    if address == _NO_ADDRESS:
        return "Invalid host: 0.0.0.0"
    if _CIDR_RE.fullmatch(rest):
        try:
            ipaddress.IPv4Network(host + rest)  # strict: the host bits must be zero
        except ValueError:
            return "Invalid CIDR"
        if has_port:
            return "Invalid CIDR"
    return None


def _name_problem(host: str) -> str | None:
    labels = host.removeprefix("*.").split(".")
    if len(host.removeprefix("*.")) > 253 or not all(_LDH_LABEL_RE.fullmatch(label) for label in labels):
        return "Invalid host"
    if labels[-1].isdigit():
        return "Invalid host: numeric top-level label"
    for label in labels:
        if label.lower().startswith("xn--"):
            try:
                idna.ulabel(label)
            except UnicodeError:
                return "Invalid host: bad punycode"
    return None
