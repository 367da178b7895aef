"""Validation and normalisation of what users type: names, hostnames, URLs, meta tags, CIDRs."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import quote, urlsplit, urlunsplit

import idna

from trackly_cli.core.errors import InvalidInput

URL_MACROS = ("link_id", "message_id", "contact_id", "offer_id", "campaign")
MAX_URL_LENGTH = 2048
MAX_TEXT_LENGTH = 2000
_MACRO = re.compile(r"\{([^{}]*)\}")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_META_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def name(value: str, what: str) -> str:
    """A name users will type: 1-100 characters, not only digits (those are ids)."""
    value = value.strip()
    if not value:
        raise InvalidInput(f"{what} name is empty")
    if len(value) > 100:
        raise InvalidInput(f"{what} name is longer than 100 characters")
    if is_id(value):
        raise InvalidInput(f"{what} name {value!r} is only digits, which would read as an id")
    if any(ord(c) < 32 for c in value):
        raise InvalidInput(f"{what} name has control characters")
    return value


def key(value: str) -> str:
    """What makes two names the same name: Unicode case and compatibility forms folded, so that
    'Bücher', 'BÜCHER' and 'bücher' are one."""
    return unicodedata.normalize("NFKC", value.strip()).casefold()


def is_id(value: str) -> bool:
    """Whether a reference typed by a user is a numeric id (ASCII digits only, and small enough
    for SQLite's 64-bit integers)."""
    return value.isascii() and value.isdigit() and len(value) <= 18


def hostname(value: str) -> str:
    """'Go.Acme.TEST' -> 'go.acme.test'; IDNA for non-ASCII; no scheme, path, port or IP."""
    raw = value.strip()
    if not raw:
        raise InvalidInput("hostname is empty")
    if "://" in raw:
        raise InvalidInput(f"{raw!r}: give the hostname only, without a scheme such as https://")
    if any(c in raw for c in "/?#@\\"):
        raise InvalidInput(f"{raw!r}: give the hostname only, without a path or user")
    if ":" in raw:
        raise InvalidInput(f"{raw!r}: give the hostname only, without a port")
    host = raw.rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise InvalidInput(f"{raw!r} is an IP address: a tracking domain must be a hostname")
    try:
        # IDNA 2008 with UTS 46 mapping, as browsers do: 'faß.example' -> 'xn--fa-hia.example'
        host = idna.encode(host, uts46=True).decode("ascii") if not host.isascii() else host
    except idna.IDNAError as e:
        raise InvalidInput(f"{raw!r} is not a valid hostname ({e})") from e
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"{raw!r} is not a valid hostname")
    if labels[-1].isdigit():
        raise InvalidInput(f"{raw!r} is not a valid hostname (numeric top-level label)")
    return host


def destination_url(value: str) -> str:
    """An absolute http(s) URL, whose {macros} are all known ones."""
    url = value.strip()
    if not url:
        raise InvalidInput("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"URL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url):
        raise InvalidInput("URL has spaces or control characters: encode them (%20)")
    for macro in _MACRO.findall(url):
        if macro not in URL_MACROS:
            known = ", ".join("{" + m + "}" for m in URL_MACROS)
            raise InvalidInput(f"unknown URL macro {{{macro}}}: the known ones are {known}")
    sample = _MACRO.sub("1", url)
    if "{" in sample or "}" in sample:
        raise InvalidInput("URL has an unbalanced { or }: macros look like {link_id}")
    parts = urlsplit(sample)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(
            f"{_short(url)!r} is not an absolute http:// or https:// URL"
            + (f" (scheme {parts.scheme}: is not allowed)" if parts.scheme else "")
        )
    if not parts.hostname:
        raise InvalidInput(f"{_short(url)!r} has no host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise InvalidInput(f"{_short(url)!r} has a bad port") from e
    return url if url.isascii() else _ascii_url(url)


# Everything a URL may hold as it is: reserved characters, '%' of existing escapes and the braces
# of macros. quote() percent-encodes the rest (non-ASCII text as UTF-8).
_URL_SAFE = "/?#[]@!$&'()*+,;=:%{}~"


def _ascii_url(url: str) -> str:
    """An IRI as the URI browsers send: IDNA host, percent-encoded path, query and fragment, so
    that a redirect's Location header is plain ASCII."""
    parts = urlsplit(url)
    netloc = parts.netloc
    host = parts.hostname or ""
    if not host.isascii():
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as e:
            raise InvalidInput(f"{_short(url)!r} has a host that is not a valid domain") from e
        userinfo = netloc.rpartition("@")[0]
        port = f":{parts.port}" if parts.port is not None else ""
        netloc = (f"{userinfo}@" if userinfo else "") + ascii_host + port
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=_URL_SAFE),
            quote(parts.query, safe=_URL_SAFE),
            quote(parts.fragment, safe=_URL_SAFE),
        )
    )


def meta_pairs(pairs: list[str] | None) -> dict[str, str]:
    """['og:image=https://…', 'twitter:card=summary'] -> dict; KEY=VALUE, keys like og:title."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"--meta {pair!r} is not KEY=VALUE (for example og:image=https://…)")
        if not _META_KEY.match(key):
            raise InvalidInput(f"--meta key {key!r} is not a meta tag name such as og:title")
        result[key] = text(value, f"--meta {key}")
    return result


def text(value: str | None, what: str, limit: int = MAX_TEXT_LENGTH) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    return value


def cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as e:
        raise InvalidInput(
            f"{value!r} is not an IP address or CIDR range such as 203.0.113.0/24"
        ) from e


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
