"""Netskope's URL-list entry grammar, as the fake tenant checks an ``exact`` or ``regex`` list's entries.

The rules follow Netskope's "URL List Best Practices" (sections "URL Supported Formats", "Valid / Invalid
URL Examples", "IP address ranges and CIDR Validation", "Valid / Invalid Ranges and CIDR Examples");
tests/data/netskope_url_grammar.json holds every documented example with its section. Where the
documentation is silent, docs/FAKE_TENANT.md says what this fake chose.

This is the test double's own reading, written apart from the system's (cte_common.url_list), so that a
test comparing the two checks something.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["WILDCARD_REASON", "regex_entry_problem", "url_entry_problem", "url_entry_problem_in_full"]

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_NUMERIC_HOST = re.compile(r"[0-9.]+")
_RANGE_HOST = re.compile(r"((?:[0-9]+\.){3}[0-9]+)-((?:[0-9]+\.){3}[0-9]+)")
_PORT = re.compile(r"[0-9]{1,5}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# "Any combination of unreserved ([a-z0-9-._~]), percent encoding and delimiters ([!$&'()*+,;=])" in the
# path, query and fragment, with the characters that separate them (/ ? # : @); '*' is the wildcard's.
_PATH = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=:@/?#]|%[0-9A-Fa-f]{2})*")
_CIDR_BITS = re.compile(r"/[0-9]+")
WILDCARD_REASON = "wildcards are allowed only as a leading '*.'"
# The common accepted shape, ``[*.]hostname[/path]`` with a non-numeric last label and a path of plain
# characters, in one match: lists hold up to 300,000 entries. Anything else goes through the full rules;
# the fast path accepts nothing they refuse (tests/unit/test_fake_tenant_domain.py checks it).
_FAST_ACCEPT = re.compile(
    r"(?:\*\.)?(?=[^/]{1,253}(?:/|$))"
    rf"(?:{_LABEL}\.)*(?=[A-Za-z0-9-]*[A-Za-z-]){_LABEL}"
    r"(?:/[A-Za-z0-9\-._~!$&'()+,;=:@/?#]*)?"
)


def url_entry_problem(entry: object) -> str | None:
    """Why the tenant refuses ``entry`` in an ``exact`` URL list, or None when it is accepted.

    Accepted: ``[http(s)://][*.]host[:port][/path][?query][#fragment]`` (the scheme is ignored),
    ``ipv4[:port][/path]``, a CIDR ``ipv4/bits`` whose host bits are zero, and a range ``ipv4-ipv4``
    whose start is below its end; never ``0.0.0.0``. IPv6 is refused like the tenant does.
    """
    if isinstance(entry, str) and _FAST_ACCEPT.fullmatch(entry):
        return None
    return url_entry_problem_in_full(entry)


def url_entry_problem_in_full(entry: object) -> str | None:
    """:func:`url_entry_problem` without its fast path."""
    if not isinstance(entry, str):
        return "not a string"
    if not entry:
        return "empty entry"
    if not entry.isascii():
        return "non-ASCII characters: use the punycode form of the host"
    # ASCII by now, so the only printable whitespace is the space.
    if not entry.isprintable() or " " in entry:
        return "whitespace or control characters"
    scheme = _SCHEME.match(entry)
    if scheme:
        if scheme.group(1).lower() not in ("http", "https"):
            return "only an http or https scheme is allowed (and ignored)"
        entry = entry[scheme.end() :]
    cut = min((i for i in (entry.find("/"), entry.find("?"), entry.find("#")) if i >= 0), default=len(entry))
    host_port, rest = entry[:cut], entry[cut:]
    if "@" in host_port:
        return "user:password@host is not supported"
    if host_port.startswith("[") or host_port.count(":") > 1:
        return "IPv6 addresses are not supported"
    host, colon, port = host_port.partition(":")
    if colon and (not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535):
        return "invalid port"
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
    if "*" in host or "*" in rest:
        return WILDCARD_REASON
    if not host:
        return "missing host"
    if not _PATH.fullmatch(rest):
        return "invalid path: use percent-encoding for characters other than unreserved and !$&'()*+,;="
    if ip_range := _RANGE_HOST.fullmatch(host):
        return _range_problem(ip_range.group(1), ip_range.group(2), wildcard, bool(colon or rest))
    if _NUMERIC_HOST.fullmatch(host):
        return _ip_problem(host, wildcard, bool(colon), rest)
    if len(host) > 253:
        return "host name longer than 253 characters"
    if not _HOSTNAME.fullmatch(host):
        return "invalid host name"
    if host.rsplit(".", 1)[-1].isdigit():
        return "invalid host name: numeric top-level label"
    return None


def _address(text: str) -> ipaddress.IPv4Address | None:
    try:
        address = ipaddress.IPv4Address(text)  # refuses leading zeros and short forms
    except ValueError:
        return None
    return None if address == ipaddress.IPv4Address(0) else address


def _range_problem(start_text: str, end_text: str, wildcard: bool, more: bool) -> str | None:
    start, end = _address(start_text), _address(end_text)
    if start is None or end is None:
        return "invalid IP range: both ends must be IPv4 addresses other than 0.0.0.0"
    if wildcard or more:
        return "an IP range cannot have a wildcard, port, path or query"
    if not start < end:
        return "invalid IP range: the start address must be lower than the end address"
    return None


def _ip_problem(host: str, wildcard: bool, port: bool, rest: str) -> str | None:
    address = _address(host)
    if address is None:
        return "invalid IPv4 address" if host != "0.0.0.0" else "0.0.0.0 is not allowed"  # noqa: S104
    if wildcard:
        return "a wildcard cannot prefix an IP address"
    if _CIDR_BITS.fullmatch(rest):
        # ipv4/NN is a CIDR range, not a path (ipv4/NN/more is a path).
        if port:
            return "a CIDR range cannot have a port"
        try:
            ipaddress.IPv4Network(host + rest, strict=True)
        except ValueError:
            return "invalid CIDR: the prefix must be 0..32 and the host bits zero"
    return None


def regex_entry_problem(entry: object) -> str | None:
    """Why the tenant refuses ``entry`` in a ``regex`` URL list (it must compile), or None."""
    if not isinstance(entry, str):
        return "not a string"
    if not entry:
        return "empty entry"
    try:
        re.compile(entry)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return None
