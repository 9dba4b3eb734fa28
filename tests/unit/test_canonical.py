"""Canonical indicator text: table-driven rules and hypothesis properties."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cte_common.canonical import InvalidIndicator, canonicalize, refang
from cte_common.indicators import IndicatorType as T

SEED_SHA256 = "B53F3C0CD32D7F20849850768DA6431E5F876B7BFA61DB0AA0700B02873393FA"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hxxp://evil[.]com/a", "http://evil.com/a"),
        ("hxxps://evil[.]com", "https://evil.com"),
        ("HXXPS://evil.com", "https://evil.com"),
        ("fxp://files(.)evil{.}com", "ftp://files.evil.com"),
        ("evil[dot]com", "evil.com"),
        ("evil[DOT]com", "evil.com"),
        ("hxxp[://]evil.com", "http://evil.com"),
        ("hxxp[:]//evil.com", "http://evil.com"),
        ("1[.]2[.]3[.]4", "1.2.3.4"),
        ("2001[:]db8[:][:]1", "2001:db8::1"),
        ("[[.]]", "."),  # refang runs to a fixed point, so it is idempotent
        ("myhxxpserver.com", "myhxxpserver.com"),  # hxxp is a scheme only at the start, before ://
        ("example.com", "example.com"),
    ],
)
def test_refang(value: str, expected: str) -> None:
    assert refang(value) == expected
    assert refang(expected) == expected


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        # hashes
        (T.SHA256, SEED_SHA256, SEED_SHA256.lower()),
        (T.SHA256, f"  {SEED_SHA256}\n", SEED_SHA256.lower()),
        (T.MD5, "D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e"),
        # ipv4 / ipv6
        (T.IPV4, " 192.0.2.1 ", "192.0.2.1"),
        (T.IPV4, "192[.]0[.]2[.]1", "192.0.2.1"),
        (T.IPV6, "2001:0db8::0001", "2001:db8::1"),
        (T.IPV6, "2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        (T.IPV6, "[2001:db8::1]", "2001:db8::1"),
        (T.IPV6, "::ffff:192.0.2.1", str(ipaddress.IPv6Address("::ffff:192.0.2.1"))),
        # domain / hostname / fqdn
        (T.DOMAIN, "Example.COM", "example.com"),
        (T.DOMAIN, "example.com.", "example.com"),
        (T.DOMAIN, "evil[.]com", "evil.com"),
        (T.DOMAIN, "Bücher.example", "xn--bcher-kva.example"),
        (T.DOMAIN, "xn--bcher-kva.example", "xn--bcher-kva.example"),
        (T.DOMAIN, "XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        (
            T.DOMAIN,
            "\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\u3002com",
            "example.com",
        ),  # UTS 46 folds width and ideographic stops
        (T.DOMAIN, "*.Example.com", "*.example.com"),
        (T.DOMAIN, "_dmarc.example.com", "_dmarc.example.com"),
        (T.DOMAIN, "r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"),
        (T.DOMAIN, "localhost", "localhost"),
        (T.DOMAIN, "myhxxpserver.com", "myhxxpserver.com"),
        (T.HOSTNAME, "_sip._tcp.Example.com", "_sip._tcp.example.com"),
        (T.HOSTNAME, "www.bücher.example.", "www.xn--bcher-kva.example"),
        (T.FQDN, "Mail.Example.com.", "mail.example.com"),
        (T.DOMAIN, "a" * 63 + ".com", "a" * 63 + ".com"),
        (T.DOMAIN, ".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),
        # url
        (T.URL, "www.dubya.com", "www.dubya.com"),  # the reference's seed: scheme-less stays scheme-less
        (T.URL, "hxxp://evil[.]com/a", "http://evil.com/a"),
        (T.URL, "HTTP://Example.COM:80/Path", "http://example.com/Path"),
        (T.URL, "https://example.com:443/a", "https://example.com/a"),
        (T.URL, "ftp://example.com:21/f", "ftp://example.com/f"),
        (T.URL, "http://example.com:443/a", "http://example.com:443/a"),
        (T.URL, "https://example.com:8443/a", "https://example.com:8443/a"),
        (T.URL, "http://example.com:0080/a", "http://example.com/a"),
        (T.URL, "example.com:80/a", "example.com:80/a"),  # no scheme, so no default port to drop
        (T.URL, "http://a.com/", "http://a.com"),
        (T.URL, "a.com/", "a.com"),
        (T.URL, "http://a.com//", "http://a.com//"),
        (T.URL, "http://a.com/dir/", "http://a.com/dir/"),
        (T.URL, "http://a.com?q=1", "http://a.com/?q=1"),
        (T.URL, "http://a.com/?q=1", "http://a.com/?q=1"),
        (T.URL, "a.com?q=1", "a.com/?q=1"),
        (T.URL, "http://a.com/x?", "http://a.com/x"),  # an empty query is indistinguishable from none
        (T.URL, "http://a.com/x#frag", "http://a.com/x"),
        (T.URL, "http://a.com/x?q=A%2fB#frag", "http://a.com/x?q=A%2fB"),
        (T.URL, "http://a.com/Case/%7Euser", "http://a.com/Case/%7Euser"),
        (T.URL, "http://example.com./a", "http://example.com/a"),
        (T.URL, "http://Bücher.example/ä", "http://xn--bcher-kva.example/ä"),
        (T.URL, "http://_dmarc.example.com/", "http://_dmarc.example.com"),
        (T.URL, "http://192.0.2.1:8080/x", "http://192.0.2.1:8080/x"),
        (T.URL, "http://[2001:0db8::0001]:80/x", "http://[2001:db8::1]/x"),
        (T.URL, "https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443"),
        (T.URL, "[2001:db8::1]/x", "[2001:db8::1]/x"),
        (
            T.URL,
            "http://example.com/redirect?u=http://other.com/",
            "http://example.com/redirect?u=http://other.com/",
        ),
        (T.URL, "http://example.com/@user", "http://example.com/@user"),
    ],
)
def test_canonical_form(kind: T, value: str, expected: str) -> None:
    assert canonicalize(kind, value) == expected
    assert canonicalize(kind, expected) == expected


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        # common
        (T.DOMAIN, "", "value is empty"),
        (T.URL, "   \t\n", "value is empty"),
        (T.MD5, " ", "value is empty"),
        # hashes
        (T.MD5, "a" * 31, "md5 must be 32 hexadecimal characters, got 31"),
        (T.MD5, "a" * 33, "md5 must be 32 hexadecimal characters, got 33"),
        (T.MD5, "g" * 32, "md5 must be 32 hexadecimal characters (0-9, a-f)"),
        (T.SHA256, SEED_SHA256[:-1], "sha256 must be 64 hexadecimal characters, got 63"),
        (T.SHA256, "d41d8cd98f00b204e9800998ecf8427e", "sha256 must be 64 hexadecimal characters, got 32"),
        (T.SHA256, "z" + SEED_SHA256[1:], "sha256 must be 64 hexadecimal characters (0-9, a-f)"),
        # ipv4 / ipv6
        (T.IPV4, "10.0.0.0/8", "CIDR networks are not accepted; ipv4 must be a single address"),
        (T.IPV6, "2001:db8::/32", "CIDR networks are not accepted; ipv6 must be a single address"),
        (T.IPV4, "2001:db8::1", "value is an IPv6 address; use type ipv6"),
        (T.IPV6, "192.0.2.1", "value is an IPv4 address; use type ipv4"),
        (T.IPV4, "256.1.1.1", "'256.1.1.1' is not a valid ipv4 address"),
        (T.IPV4, "010.1.1.1", "'010.1.1.1' is not a valid ipv4 address"),
        (T.IPV4, "example.com", "'example.com' is not a valid ipv4 address"),
        (T.IPV6, "2001:db8:::1", "'2001:db8:::1' is not a valid ipv6 address"),
        (T.IPV6, "fe80::1%eth0", "ipv6 must not carry a zone index (%...)"),
        # domain / hostname / fqdn
        (T.DOMAIN, "192.0.2.1", "domain is an IP address; use type ipv4/ipv6"),
        (T.DOMAIN, "192[.]0[.]2[.]1", "domain is an IP address; use type ipv4/ipv6"),
        (T.HOSTNAME, "2001:db8::1", "hostname is an IP address; use type ipv4/ipv6"),
        (T.FQDN, "[2001:db8::1]", "fqdn is an IP address; use type ipv4/ipv6"),
        (T.DOMAIN, "example.com/path", "domain must not contain '/'"),
        (T.DOMAIN, "example.com:8080", "domain must not contain ':'"),
        (T.DOMAIN, "user@example.com", "domain must not contain '@'"),
        (T.DOMAIN, "exa mple.com", "domain must not contain whitespace"),
        (
            T.HOSTNAME,
            "*.example.com",
            "a leading '*.' wildcard is only accepted for types domain and url, not hostname",
        ),
        (T.FQDN, "*.example.com", "a leading '*.' wildcard is only accepted for types domain and url, not fqdn"),
        (
            T.DOMAIN,
            "a.*.example.com",
            "domain label '*' may only contain letters, digits, hyphens and underscores",
        ),
        (
            T.DOMAIN,
            "ex!ample.com",
            "domain label 'ex!ample' may only contain letters, digits, hyphens and underscores",
        ),
        (T.DOMAIN, "-example.com", "domain label '-example' must not start or end with a hyphen"),
        (T.DOMAIN, "example-.com", "domain label 'example-' must not start or end with a hyphen"),
        (T.DOMAIN, "a..com", "domain has an empty label"),
        (T.DOMAIN, "example.com..", "domain has an empty label"),
        (T.DOMAIN, ".", "domain has no labels"),
        (T.DOMAIN, "*.", "domain has no labels"),
        (T.DOMAIN, "a" * 64 + ".com", f"domain label {'a' * 20!r}... is longer than 63 characters"),
        (T.DOMAIN, ".".join(["a" * 63] * 4), "domain is longer than 253 characters"),
        (T.DOMAIN, "xn---bbk.com", "domain label 'xn---bbk' is not a valid IDNA A-label"),
        (T.DOMAIN, "1.2.3", "domain ends in a numeric label; it looks like a malformed IP address"),
        (T.DOMAIN, "example.123", "domain ends in a numeric label; it looks like a malformed IP address"),
        # url
        (T.URL, "javascript:alert(1)", "url scheme 'javascript' is not accepted; use http, https or ftp"),
        (T.URL, "mailto:a@example.com", "url scheme 'mailto' is not accepted; use http, https or ftp"),
        (T.URL, "file:///etc/passwd", "url scheme 'file' is not accepted; use http, https or ftp"),
        (T.URL, "ws://example.com", "url scheme 'ws' is not accepted; use http, https or ftp"),
        (T.URL, "http:/example.com", "url scheme 'http' must be followed by '://'"),
        (T.URL, "http://user:pw@example.com/", "url must not contain user information (user@host)"),
        (T.URL, "user@example.com", "url must not contain user information (user@host)"),
        (T.URL, "http://", "url has no host"),
        (T.URL, "http:///path", "url has no host"),
        (T.URL, "/path/only", "url has no host"),
        (T.URL, "http://example.com:", "url has a ':' but no port number"),
        (T.URL, "http://example.com:0/", "url port '0' is not a number from 1 to 65535"),
        (T.URL, "http://example.com:65536/", "url port '65536' is not a number from 1 to 65535"),
        (T.URL, "http://example.com:+80/", "url port '+80' is not a number from 1 to 65535"),
        (T.URL, "http://example.com:8_0/", "url port '8_0' is not a number from 1 to 65535"),
        (T.URL, "http://example.com/a b", "url must not contain whitespace or control characters"),
        (T.URL, "http://example.com/a\tb", "url must not contain whitespace or control characters"),
        (T.URL, "http://[2001:db8::1", "url cannot be parsed: Invalid IPv6 URL"),
        (T.URL, "http://[192.0.2.1]/", "url cannot be parsed: An IPv4 address cannot be in brackets"),
        (T.URL, "http://[v1.fe]/", "url host [v1.fe] is not a valid IPv6 address"),
        (T.URL, "http://[fe80::1%25eth0]/", "url IPv6 host must not carry a zone index (%...)"),
        (T.URL, "*example.com", "url host label '*example' may only contain letters, digits, hyphens and underscores"),
        (T.URL, "*.1.2.3.4/a", "url host is an IP address in an unusual form; write it as a.b.c.d"),
        (
            T.URL,
            "http://ex!ample.com/",
            "url host label 'ex!ample' may only contain letters, digits, hyphens and underscores",
        ),
        (T.URL, "http://1.2.3/", "url host ends in a numeric label; it looks like a malformed IP address"),
        (
            T.URL,
            "http://\uff11.\uff12.\uff13.\uff14/",
            "url host is an IP address in an unusual form; write it as a.b.c.d",
        ),
        (T.URL, "http://example.com/" + "a" * 2048, "url is longer than 2048 characters"),
    ],
)
def test_refused_with_reason(kind: T, value: str, reason: str) -> None:
    with pytest.raises(InvalidIndicator) as caught:
        canonicalize(kind, value)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


def test_invalid_indicator_is_a_value_error() -> None:
    error = InvalidIndicator("value is empty")
    assert isinstance(error, ValueError)
    assert error.reason == "value is empty"


def test_url_at_the_length_limit_is_accepted() -> None:
    url = "http://example.com/" + "a" * (2048 - len("http://example.com/"))
    assert canonicalize(T.URL, url) == url


def test_reason_for_a_bad_internationalised_label_names_the_label() -> None:
    # U+0378 is unassigned, so UTS 46 refuses it before any label is examined.
    with pytest.raises(InvalidIndicator, match=r"^domain is not a valid internationalised name: "):
        canonicalize(T.DOMAIN, "a\u0378.example")
    # A combining mark cannot start a label (RFC 5891 section 4.2.3.2).
    with pytest.raises(InvalidIndicator, match=r"^domain label '\u0301a' is not a valid internationalised label"):
        canonicalize(T.DOMAIN, "\u0301a.example")


# --- properties --------------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

ascii_labels = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", fullmatch=True).filter(
    lambda label: not label.lower().startswith("xn--")  # a random xn-- label is rarely valid punycode
)
unicode_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüßéñçøå", min_size=1, max_size=20)
top_labels = st.from_regex(r"[A-Za-z]{2,12}", fullmatch=True)


@st.composite
def domain_names(draw: st.DrawFn) -> str:
    labels = draw(st.lists(st.one_of(ascii_labels, unicode_labels), min_size=0, max_size=3))
    name = ".".join([*labels, draw(top_labels)])
    if draw(st.booleans()):
        name += "."
    return name


def _as_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    assert isinstance(address, ipaddress.IPv4Address)
    return address


def _as_ipv6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    assert isinstance(address, ipaddress.IPv6Address)
    return address


# st.ip_addresses is typed as either family; the maps narrow it for the type checker.
ipv4_addresses = st.ip_addresses(v=4).map(_as_ipv4)
ipv6_addresses = st.ip_addresses(v=6).map(_as_ipv6)


def _ipv6_spellings(address: ipaddress.IPv6Address) -> st.SearchStrategy[str]:
    return st.sampled_from([str(address), address.exploded, address.exploded.upper()])


path_segments = st.from_regex(r"[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}", fullmatch=True)
queries = st.from_regex(r"[A-Za-z0-9._~%=&/?:-]{0,20}", fullmatch=True)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["", "http://", "https://", "ftp://", "HTTP://", "hxxps://"]))
    host_kind = draw(st.sampled_from(["name", "ipv4", "ipv6"]))
    if host_kind == "name":
        host = draw(domain_names())
    elif host_kind == "ipv4":
        host = str(draw(ipv4_addresses))
    else:
        host = f"[{draw(ipv6_addresses.flatmap(_ipv6_spellings))}]"
    port = draw(st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")))
    path = "".join("/" + segment for segment in draw(st.lists(path_segments, max_size=4)))
    query = draw(st.one_of(st.just(""), queries.map(lambda q: "?" + q)))
    fragment = draw(st.one_of(st.just(""), queries.map(lambda f: "#" + f)))
    return scheme + host + port + path + query + fragment


def _assert_idempotent(kind: T, value: str) -> str:
    once = canonicalize(kind, value)
    assert canonicalize(kind, once) == once
    return once


def _outcome(kind: T, value: str) -> str | InvalidIndicator:
    """The canonical text, or the refusal; any other exception propagates and fails the test."""
    try:
        return _assert_idempotent(kind, value)
    except InvalidIndicator as error:
        return error


@PROPERTY_SETTINGS
@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32))
def test_md5_idempotent(value: str) -> None:
    assert _assert_idempotent(T.MD5, value) == value.lower()


@PROPERTY_SETTINGS
@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64))
def test_sha256_idempotent(value: str) -> None:
    assert _assert_idempotent(T.SHA256, value) == value.lower()


@PROPERTY_SETTINGS
@given(ipv4_addresses)
def test_ipv4_idempotent(address: ipaddress.IPv4Address) -> None:
    assert _assert_idempotent(T.IPV4, str(address)) == str(address)


@PROPERTY_SETTINGS
@given(ipv6_addresses.flatmap(lambda a: st.tuples(st.just(a), _ipv6_spellings(a))))
def test_ipv6_idempotent(address_and_text: tuple[ipaddress.IPv6Address, str]) -> None:
    address, text = address_and_text
    assert _assert_idempotent(T.IPV6, text) == str(address)


@PROPERTY_SETTINGS
@given(st.sampled_from([T.DOMAIN, T.HOSTNAME, T.FQDN]), domain_names())
def test_names_idempotent(kind: T, name: str) -> None:
    outcome = _outcome(kind, name)
    if isinstance(outcome, InvalidIndicator):
        # The only refusal a generated name may earn is the total length limit after punycode.
        assert outcome.reason == f"{kind} is longer than 253 characters"
        return
    assert outcome.isascii()
    assert not outcome.endswith(".")
    if name.isascii():
        assert outcome == name.lower().removesuffix(".")


@PROPERTY_SETTINGS
@given(domain_names())
def test_wildcard_domain_idempotent(name: str) -> None:
    outcome = _outcome(T.DOMAIN, "*." + name)
    if isinstance(outcome, InvalidIndicator):
        assert outcome.reason == "domain is longer than 253 characters"
        return
    assert outcome.startswith("*.")


@PROPERTY_SETTINGS
@given(urls())
def test_urls_idempotent(url: str) -> None:
    outcome = _outcome(T.URL, url)
    if isinstance(outcome, InvalidIndicator):
        # A scheme-less single-label host named like a scheme ("http:8080") reads as a missing "//"; an
        # IPv4 host may be 0.0.0.0, or "a.b.c.d/NN" a CIDR range that Netskope URL lists refuse.
        assert (
            outcome.reason == "url host is longer than 253 characters"
            or outcome.reason.endswith("must be followed by '://'")
            or outcome.reason == "url host 0.0.0.0 is not an address a list can hold"
            or outcome.reason.startswith("url reads as a CIDR range (a.b.c.d/NN)")
        ), (url, outcome.reason)
        return
    assert "#" not in outcome
    assert outcome.isascii() or not url.isascii()


@PROPERTY_SETTINGS
@given(st.sampled_from(list(T)), st.text())
def test_any_text_is_accepted_or_refused_with_invalid_indicator(kind: T, value: str) -> None:
    outcome = _outcome(kind, value)  # accepted values are also checked for idempotence
    if isinstance(outcome, InvalidIndicator):
        assert outcome.reason


@PROPERTY_SETTINGS
@given(st.sampled_from(list(T)), st.text(alphabet="abcxn-_.:/[]@%*?#09 \u00fc\uff0e\u3002", max_size=30))
def test_url_like_text_is_accepted_or_refused_with_invalid_indicator(kind: T, value: str) -> None:
    # A narrow alphabet of the characters the parsers care about reaches far more branches than text().
    outcome = _outcome(kind, value)
    if isinstance(outcome, InvalidIndicator):
        assert outcome.reason


@PROPERTY_SETTINGS
@given(st.text())
def test_refang_idempotent(value: str) -> None:
    assert refang(refang(value)) == refang(value)


@PROPERTY_SETTINGS
@given(st.one_of(ipv4_addresses, ipv6_addresses))
def test_ip_of_one_family_is_refused_as_the_other(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    other = T.IPV6 if address.version == 4 else T.IPV4
    with pytest.raises(InvalidIndicator, match=r"^value is an IPv[46] address; use type ipv[46]$"):
        canonicalize(other, str(address))


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (T.IPV4, "x" * 5000),
        (T.DOMAIN, "a" * 5000 + "!.com"),
        (T.DOMAIN, "\u0378" * 1000),
        (T.URL, "http://example.com:" + "9" * 5000),
        (T.URL, "z" * 5000 + "://example.com"),
    ],
)
def test_reason_stays_short_for_huge_input(kind: T, value: str) -> None:
    with pytest.raises(InvalidIndicator) as caught:
        canonicalize(kind, value)
    assert len(caught.value.reason) <= 200


NAME_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def _is_name(text: str) -> bool:
    """A canonical host name: lower-case ASCII labels, no trailing dot, and not an IP address."""
    try:
        ipaddress.ip_address(text)
        return False
    except ValueError:
        pass
    return len(text) <= 253 and all(NAME_LABEL.fullmatch(label) for label in text.split("."))


def _is_ip(cls: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address], text: str) -> bool:
    try:
        return str(cls(text)) == text
    except ValueError:
        return False


def _keeps_its_type(kind: T, text: str) -> bool:
    """Whether ``text`` is a well-formed canonical value of ``kind``, checked without the module."""
    match kind:
        case T.MD5:
            return re.fullmatch(r"[0-9a-f]{32}", text) is not None
        case T.SHA256:
            return re.fullmatch(r"[0-9a-f]{64}", text) is not None
        case T.IPV4:
            return _is_ip(ipaddress.IPv4Address, text)
        case T.IPV6:
            return _is_ip(ipaddress.IPv6Address, text)
        case T.DOMAIN:
            return _is_name(text.removeprefix("*."))
        case T.HOSTNAME | T.FQDN:
            return _is_name(text)
        case T.URL:
            scheme, sep, rest = text.partition("://")
            if not sep:
                scheme, rest = "", text
            elif scheme not in ("http", "https", "ftp"):
                return False
            if "#" in text:
                return False
            if rest.startswith("["):
                return _is_ip(ipaddress.IPv6Address, rest[1:].split("]", 1)[0])
            host = urlsplit("//" + rest).netloc.split(":", 1)[0]
            return _is_ip(ipaddress.IPv4Address, host) or _is_name(host)


ANY_VALUE = st.one_of(
    st.text(),
    st.text(alphabet="abcxn-_.:/[]@%*?#09 \u00fc\uff0e\u3002", max_size=30),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=64),
    urls(),
    domain_names(),
    ipv4_addresses.map(str),
    ipv6_addresses.flatmap(_ipv6_spellings),
)


@PROPERTY_SETTINGS
@given(st.sampled_from(list(T)), ANY_VALUE)
def test_canonical_values_keep_their_type(kind: T, value: str) -> None:
    # Type-preserving: whatever a type accepts becomes a well-formed value of that same type, which the
    # type accepts again unchanged (idempotent).
    outcome = _outcome(kind, value)
    if isinstance(outcome, str):
        assert _keeps_its_type(kind, outcome), (kind, value, outcome)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("*.Example.com", "*.example.com"),
        ("*.example.com/Path?q=1", "*.example.com/Path?q=1"),
        ("HTTP://*.Example.COM:8080/a", "http://*.example.com:8080/a"),
        ("*.gov", "*.gov"),
    ],
)
def test_a_url_may_start_with_a_wildcard_label_as_netskope_url_lists_take_it(raw: str, canonical: str) -> None:
    """URL lists accept ``*.host`` (the tenant's grammar, which the fake tenant checks): the list entry
    the sink makes of the canonical URL (its scheme dropped) is one the tenant takes."""
    from fake_tenant.url_grammar import url_entry_problem

    assert canonicalize(T.URL, raw) == canonical
    entry = canonical.split("://", 1)[-1]
    assert url_entry_problem(entry) is None
