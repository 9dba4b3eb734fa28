"""Canonical text of an indicator: its identity in storage and the exact string pushed to Netskope.

`canonicalize` is pure and idempotent, and for every input either returns a string of the requested
type or raises `InvalidIndicator` with a reason meant for the person who submitted the value.
"""

from __future__ import annotations

import ipaddress
import re
from typing import assert_never
from urllib.parse import urlsplit

import idna

from cte_common.indicators import IndicatorType

__all__ = ["IPV4_OCTET", "InvalidIndicator", "canonicalize", "canonicalize_fast", "is_canonical", "refang"]


class InvalidIndicator(ValueError):
    """A value that is not a valid indicator of its type; `reason` says why, in one short sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _quote(text: str, limit: int = 40) -> str:
    """repr of user input for a reason, cut short so one bad value cannot produce a huge message."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


# --- refang ------------------------------------------------------------------------------------------

# Only the common defang spellings; anything rarer is left alone rather than guessed at.
_DEFANG_RE = re.compile(r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\[:\]|\[://\]", re.IGNORECASE)
_DEFANG_REPLACEMENT = {"[.]": ".", "(.)": ".", "{.}": ".", "[dot]": ".", "[:]": ":", "[://]": "://"}
# Anchored and followed by "://" so a name that merely contains "hxxp" (myhxxpserver.com) is untouched.
_DEFANGED_SCHEME_RE = re.compile(r"^(hxxps?|fxp)(?=://)", re.IGNORECASE)
_SCHEME_REPLACEMENT = {"hxxp": "http", "hxxps": "https", "fxp": "ftp"}


def refang(value: str) -> str:
    """Undo the common defang forms: hxxp/hxxps/fxp schemes, [.] (.) {.} [dot], [:] and [://]."""
    while True:
        # Repeat to a fixed point: "[[.]]" becomes "[.]" after one pass, and refang must be idempotent
        # for canonicalize to be. Every replacement shortens the text, so this terminates.
        refanged = _DEFANG_RE.sub(lambda m: _DEFANG_REPLACEMENT[m.group().lower()], value)
        if refanged == value:
            break
        value = refanged
    return _DEFANGED_SCHEME_RE.sub(lambda m: _SCHEME_REPLACEMENT[m.group().lower()], value)


# --- hashes ------------------------------------------------------------------------------------------

_HEX_RE = re.compile(r"[0-9a-fA-F]+")


def _hash(kind: str, length: int, value: str) -> str:
    if len(value) != length:
        raise InvalidIndicator(f"{kind} must be {length} hexadecimal characters, got {len(value)}")
    if not _HEX_RE.fullmatch(value):
        raise InvalidIndicator(f"{kind} must be {length} hexadecimal characters (0-9, a-f)")
    return value.lower()


# --- IP addresses ------------------------------------------------------------------------------------


def _ip(kind: IndicatorType, value: str) -> str:
    if "/" in value:
        raise InvalidIndicator(f"CIDR networks are not accepted; {kind} must be a single address")
    if "%" in value:
        # A zone index names an interface on one machine; it means nothing as shared intelligence.
        raise InvalidIndicator(f"{kind} must not carry a zone index (%...)")
    if kind == IndicatorType.IPV6 and value.startswith("[") and value.endswith("]"):
        value = value[1:-1]  # the URL-literal spelling of an IPv6 address
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidIndicator(f"{_quote(value)} is not a valid {kind} address") from None
    if kind == IndicatorType.IPV4 and address.version != 4:
        raise InvalidIndicator("value is an IPv6 address; use type ipv6")
    if kind == IndicatorType.IPV6 and address.version != 6:
        raise InvalidIndicator("value is an IPv4 address; use type ipv4")
    return str(address)


# --- domain names ------------------------------------------------------------------------------------

_MAX_LABEL = 63
_MAX_NAME = 253
# LDH plus underscore: RFC 952/1123 forbid "_" in host names, but real DNS names (_dmarc, SRV owners,
# CDN hosts) carry it and feeds report them, so refusing would lose real indicators.
_ASCII_LABEL_RE = re.compile(r"[a-z0-9_-]+")
_FORBIDDEN_IN_NAME_RE = re.compile(r"[/:@\s]")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


def _ascii_label(what: str, label: str) -> str:
    if len(label) > _MAX_LABEL:
        raise InvalidIndicator(f"{what} label {_quote(label, 20)} is longer than {_MAX_LABEL} characters")
    if not _ASCII_LABEL_RE.fullmatch(label):
        raise InvalidIndicator(
            f"{what} label {_quote(label)} may only contain letters, digits, hyphens and underscores"
        )
    if label.startswith("-") or label.endswith("-"):
        raise InvalidIndicator(f"{what} label {_quote(label)} must not start or end with a hyphen")
    if label.startswith("xn--"):
        # An A-label must be the canonical punycode of a valid U-label, else two spellings of one
        # name could exist; idna checks exactly that (RFC 5891 section 5.3).
        try:
            idna.ulabel(label)
        except UnicodeError:
            raise InvalidIndicator(f"{what} label {_quote(label)} is not a valid IDNA A-label") from None
    return label


def _unicode_label(what: str, label: str) -> str:
    try:
        return idna.alabel(label).decode("ascii")
    except UnicodeError as err:
        raise InvalidIndicator(
            f"{what} label {_quote(label)} is not a valid internationalised label: {err}"[:200]
        ) from None


def _name(what: str, value: str, *, allow_wildcard: bool, ip_reason: str) -> str:
    """Canonical A-label form of a DNS name; `what` names the field in reasons."""
    if _is_ip(value.removesuffix(".")):
        raise InvalidIndicator(ip_reason)
    forbidden = _FORBIDDEN_IN_NAME_RE.search(value)
    if forbidden:
        char = "whitespace" if forbidden.group().isspace() else repr(forbidden.group())
        raise InvalidIndicator(f"{what} must not contain {char}")

    wildcard = value.startswith("*.")
    if wildcard:
        if not allow_wildcard:
            raise InvalidIndicator(f"a leading '*.' wildcard is only accepted for types domain and url, not {what}")
        value = value[2:]

    # UTS 46 mapping of the whole name folds case, width and the ideographic full stops to ".", so
    # labels are split only after it. std3_rules=False lets "_" through; the label checks below
    # decide what ASCII is allowed.
    try:
        name = idna.uts46_remap(value, std3_rules=False)
    except UnicodeError as err:
        # idna's message quotes the whole input; the offending code point and position are what matter.
        raise InvalidIndicator(f"{what} is not a valid internationalised name: {err}"[:200]) from None
    name = name.removesuffix(".")  # the root label; "a.com." and "a.com" are one name
    if not name:
        raise InvalidIndicator(f"{what} has no labels")
    if _is_ip(name):  # for instance full-width digits that map to an address
        raise InvalidIndicator(ip_reason)

    labels: list[str] = []
    for label in name.split("."):
        if not label:
            raise InvalidIndicator(f"{what} has an empty label")
        # idna for non-ASCII labels only: IDNA 2008 refuses "_" even in otherwise plain ASCII labels.
        labels.append(_ascii_label(what, label) if label.isascii() else _unicode_label(what, label))
    if labels[-1].isdigit():
        # No top-level domain is numeric, and resolvers and browsers read such a name as an IPv4
        # address in a short form (1.2.3 is 1.2.0.3), so it is a malformed address, not a name.
        raise InvalidIndicator(f"{what} ends in a numeric label; it looks like a malformed IP address")

    canonical = ".".join(labels)
    if len(canonical) > _MAX_NAME:
        raise InvalidIndicator(f"{what} is longer than {_MAX_NAME} characters")
    return "*." + canonical if wildcard else canonical


# --- URLs --------------------------------------------------------------------------------------------

_MAX_URL = 2048
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_ACCEPTED_SCHEME_RE = re.compile(r"(https?|ftp):", re.IGNORECASE)
# "name:" not followed by a port number ("mailto:x", "javascript:..."): a scheme without "//", not a host.
_OPAQUE_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?![0-9]*(?:[/?#]|$))")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
_PORT_RE = re.compile(r"[0-9]{1,5}")  # ASCII digits only; int() would also take "+80", "8_0", "٨٠"
# RFC 3986 has no raw whitespace or controls, and urlsplit silently deletes tab/CR/LF, which would
# make the stored identity differ from what was submitted without saying so.
_URL_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f]|\s")
# Characters RFC 3986 leaves out of a URI, which Netskope URL lists refuse in a path or query: written
# percent-encoded, as a browser sends them, so the indicator stays the same resource and fits a list.
_URL_UNSAFE_RE = re.compile(r'[<>"{}|\\^\[\]`]')
# An IPv4 range host, ``a.b.c.d-w.x.y.z``, as Netskope URL lists take it.
_IPV4_RANGE_RE = re.compile(r"((?:[0-9]+\.){3}[0-9]+)-((?:[0-9]+\.){3}[0-9]+)")
# "ipv4/NN" is a CIDR range in a URL list, not a path (Netskope's rule); "ipv4/NN/more" is a path.
_CIDR_PATH_RE = re.compile(r"/([0-9]+)")
_UNSPECIFIED = ipaddress.IPv4Address(0)


def _percent_encode_unsafe(text: str) -> str:
    return _URL_UNSAFE_RE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def _ipv4_range(start_text: str, end_text: str) -> str:
    try:
        start, end = ipaddress.IPv4Address(start_text), ipaddress.IPv4Address(end_text)
    except ValueError:
        raise InvalidIndicator("url host is an IP range whose ends are not both IPv4 addresses (a.b.c.d)") from None
    if _UNSPECIFIED in (start, end):
        raise InvalidIndicator("url host 0.0.0.0 is not an address a list can hold")
    if not start < end:
        raise InvalidIndicator("url host is an IP range whose start is not below its end")
    return f"{start}-{end}"


def _url(value: str) -> str:
    if _URL_FORBIDDEN_RE.search(value):
        raise InvalidIndicator("url must not contain whitespace or control characters")

    scheme_match = _SCHEME_RE.match(value)
    scheme = ""
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        if scheme not in _DEFAULT_PORTS:
            raise InvalidIndicator(f"url scheme {_quote(scheme)} is not accepted; use http, https or ftp")
        value = scheme + value[len(scheme) :]
    elif half_scheme := _ACCEPTED_SCHEME_RE.match(value):
        raise InvalidIndicator(f"url scheme {half_scheme.group(1).lower()!r} must be followed by '://'")
    elif opaque := _OPAQUE_SCHEME_RE.match(value):
        raise InvalidIndicator(f"url scheme {_quote(opaque.group(1).lower())} is not accepted; use http, https or ftp")
    try:
        # Netskope URL lists take scheme-less "host/path"; "//" makes urlsplit read the host as one.
        parts = urlsplit(value if scheme else "//" + value)
    except ValueError as err:
        raise InvalidIndicator(f"url cannot be parsed: {err}"[:200]) from None

    netloc = parts.netloc
    ip_range: re.Match[str] | None = None
    if "@" in netloc:
        raise InvalidIndicator("url must not contain user information (user@host)")
    if netloc.startswith("["):
        host_text, _, after = netloc[1:].partition("]")
        if after and not after.startswith(":"):
            raise InvalidIndicator("url has text between the ']' of its IPv6 host and the port")
        port_text = after[1:] if after else None
        try:
            address = ipaddress.IPv6Address(host_text)
        except ValueError:
            raise InvalidIndicator(f"url host [{host_text[:40]}] is not a valid IPv6 address") from None
        if address.scope_id is not None:
            raise InvalidIndicator("url IPv6 host must not carry a zone index (%...)")
        host = f"[{address}]"
    else:
        # A ":" is never part of an unbracketed host, so everything after the first one is the port.
        host_text, colon, port_text_or_empty = netloc.partition(":")
        port_text = port_text_or_empty if colon else None
        if not host_text:
            raise InvalidIndicator("url has no host")
        ip_range = _IPV4_RANGE_RE.fullmatch(host_text)  # a.b.c.d-w.x.y.z, as URL lists take it
        try:
            host = str(ipaddress.IPv4Address(host_text))
        except ValueError:
            if ip_range:
                host = _ipv4_range(ip_range.group(1), ip_range.group(2))
            else:
                # A leading "*." as Netskope URL lists take it (``*.example.com``, the whole first label).
                host = _name(
                    "url host",
                    host_text,
                    allow_wildcard=True,
                    ip_reason="url host is an IP address in an unusual form; write it as a.b.c.d",
                )

    port = ""
    if port_text == "":
        raise InvalidIndicator("url has a ':' but no port number")
    if port_text is not None:
        if not _PORT_RE.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise InvalidIndicator(f"url port {_quote(port_text)} is not a number from 1 to 65535")
        # Without a scheme there is no default to compare with, so the port stays.
        if int(port_text) != _DEFAULT_PORTS.get(scheme):
            port = f":{int(port_text)}"

    # The fragment never reaches a server, so it is not part of the identity. An empty query ("a/?")
    # is dropped with it, since urlsplit cannot tell it from no query.
    path, query = _percent_encode_unsafe(parts.path), _percent_encode_unsafe(parts.query)
    if query and not path:
        path = "/"
    elif path == "/" and not query:
        path = ""
    if host == str(_UNSPECIFIED):
        raise InvalidIndicator("url host 0.0.0.0 is not an address a list can hold")
    if ip_range and (port or path or query):
        raise InvalidIndicator("url host is an IP range, which cannot have a port, path or query")
    if (cidr := _CIDR_PATH_RE.fullmatch(path)) and not query and _FAST_IPV4_RE.fullmatch(host):
        if port:
            raise InvalidIndicator("url reads as a CIDR range (a.b.c.d/NN), which cannot have a port")
        try:
            ipaddress.IPv4Network(f"{host}/{int(cidr.group(1))}")
        except ValueError:
            raise InvalidIndicator("url reads as a CIDR range (a.b.c.d/NN) whose host bits are not zero") from None
        path = f"/{int(cidr.group(1))}"

    canonical = (f"{scheme}://" if scheme else "") + host + port + path + (f"?{query}" if query else "")
    if len(canonical) > _MAX_URL:
        raise InvalidIndicator(f"url is longer than {_MAX_URL} characters")
    return canonical


# --- entry point -------------------------------------------------------------------------------------


def canonicalize(kind: IndicatorType, value: str) -> str:
    """The canonical text of `value` as an indicator of type `kind`; raises InvalidIndicator."""
    value = value.strip()
    if not value:
        raise InvalidIndicator("value is empty")
    match kind:
        case IndicatorType.MD5:
            return _hash("md5", 32, value)
        case IndicatorType.SHA256:
            return _hash("sha256", 64, value)
        case IndicatorType.IPV4 | IndicatorType.IPV6:
            return _ip(kind, refang(value))
        case IndicatorType.DOMAIN | IndicatorType.HOSTNAME | IndicatorType.FQDN:
            return _name(
                str(kind),
                refang(value),
                allow_wildcard=kind == IndicatorType.DOMAIN,
                ip_reason=f"{kind} is an IP address; use type ipv4/ipv6",
            )
        case IndicatorType.URL:
            return _url(refang(value))
        case _:
            assert_never(kind)


# --- the fast path -----------------------------------------------------------------------------------

# Shapes whose canonical text is the text itself: most of what feeds send. Each pattern accepts only text
# that every step of ``canonicalize`` leaves alone (no case to fold, no defang form, no IDNA label, no
# default port, no trailing dot or lone "/"); anything else takes the full path.
_FAST_HEX32_RE = re.compile(r"[0-9a-f]{32}")
_FAST_HEX64_RE = re.compile(r"[0-9a-f]{64}")
# One octet of an IPv4 address as ipaddress reads it: 0 to 255, no leading zero.
IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_FAST_IPV4_RE = re.compile(rf"{IPV4_OCTET}(?:\.{IPV4_OCTET}){{3}}")
# Lowercase LDH-and-underscore labels of 1 to 63 characters, not starting or ending with a hyphen, not an
# A-label ("xn--", which idna checks), the last one not all digits.
_LABEL = r"(?!xn--)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_FAST_NAME_RE = re.compile(rf"(?:{_LABEL}\.)*(?![0-9]+$){_LABEL}")
_FAST_URL_RE = re.compile(
    r"(?:(?P<scheme>https?|ftp)://)?(?P<host>[a-z0-9_.-]+)(?::(?P<port>[1-9][0-9]{0,4}))?"
    r'(?P<path>/[^?#\x00-\x20\x7f<>"{}|\\^\[\]`]*)?(?:\?(?P<query>[^#\x00-\x20\x7f<>"{}|\\^\[\]`]+))?'
)


def _fast_name(value: str) -> bool:
    return len(value) <= _MAX_NAME and _FAST_NAME_RE.fullmatch(value) is not None


def _fast_url(value: str) -> bool:
    m = _FAST_URL_RE.fullmatch(value)
    if m is None or len(value) > _MAX_URL or not value.isascii() or _DEFANG_RE.search(value):
        return False
    scheme, host, port, path, query = m.group("scheme", "host", "port", "path", "query")
    if not scheme and (_ACCEPTED_SCHEME_RE.match(value) or _OPAQUE_SCHEME_RE.match(value)):
        return False  # "http:8080/x" and the like: the full path refuses or reads them otherwise
    if port is not None and (int(port) > 65535 or int(port) == _DEFAULT_PORTS.get(scheme or "")):
        return False
    if path == "/" and query is None:
        return False
    if path is None and query is not None:
        return False  # "a?q": the full path writes the root path in, "a/?q"
    if _FAST_IPV4_RE.fullmatch(host):
        # 0.0.0.0 is refused, and "a.b.c.d/NN" is a CIDR range that the full path checks.
        return host != "0.0.0.0" and not (query is None and path is not None and path[1:].isdigit())  # noqa: S104
    return _fast_name(host) and not host.replace(".", "").isdigit()


def is_canonical(kind: IndicatorType, value: str) -> bool:
    """Whether ``canonicalize(kind, value)`` is ``value`` itself, decided cheaply; False means "not sure".

    Never True for a value that ``canonicalize`` changes or refuses (the property tests check it), so a
    caller may skip the full path whenever it says so.
    """
    match kind:
        case IndicatorType.MD5:
            return _FAST_HEX32_RE.fullmatch(value) is not None
        case IndicatorType.SHA256:
            return _FAST_HEX64_RE.fullmatch(value) is not None
        case IndicatorType.IPV4:
            return _FAST_IPV4_RE.fullmatch(value) is not None
        case IndicatorType.DOMAIN:
            return _fast_name(value.removeprefix("*."))
        case IndicatorType.HOSTNAME | IndicatorType.FQDN:
            return _fast_name(value)
        case IndicatorType.URL:
            return _fast_url(value)
        case _:
            return False  # IPv6: its canonical text is the compressed form; the full path is cheap enough


def canonicalize_fast(kind: IndicatorType, value: str) -> str:
    """``canonicalize``, skipping its work for a value that is already canonical."""
    return value if is_canonical(kind, value) else canonicalize(kind, value)
