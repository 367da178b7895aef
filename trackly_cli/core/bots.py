"""Bot detection, in layers, each verdict with its reasons.

Signals are strong (one is enough) or weak (two are needed):

- request shape: HEAD or OPTIONS, an empty user agent, prefetch headers (strong); no
  Accept-Language, a desktop browser on a per-recipient SMS link (weak);
- user agent: crawlerdetect's list, SMS and messenger preview fetchers, scanners that name
  themselves, over 1 kB (strong);
- IP: the operator's deny list and imported datacenter ranges (strong);
- timing: 3+ different IPs on one per-recipient link within 10 s (strong); a click sooner than
  the list's min-human-seconds after delivery (after sending until a delivery receipt gives the
  time: see receipts), or a second IP on the link within 10 s (weak).

An address on the operator's allow list skips the IP and timing layers (the request shape and
the user agent still count).
"""

from __future__ import annotations

import functools
import re
import threading
import time
from dataclasses import dataclass

import re2
from crawlerdetect.providers.crawlers import data as CRAWLER_PATTERNS
from crawlerdetect.providers.exclusions import data as EXCLUDED_PATTERNS

from trackly_cli.core import ipranges
from trackly_cli.core.errors import InvalidInput
from trackly_cli.core.ipranges import RangeSet

MAX_USER_AGENT = 1024
# Verdicts are cached for user agents up to this long: real ones are shorter, and a flood of
# long made-up ones must not pin memory (each is cheap to judge again: see Crawlers).
CACHED_USER_AGENT = 400
IP_WINDOW_SECONDS = 10.0
IP_CACHE_SIZE = 65_536

# Link-preview fetchers of SMS and messenger apps and security scanners that general crawler
# lists miss or name differently; checked before crawlerdetect so the reason is specific.
PREVIEW_FETCHERS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"facebookexternalhit/1\.1 Facebot Twitterbot/1\.0"), "iMessage link preview"),
    (re.compile(r"GoogleMessages"), "Google Messages link preview"),
    (re.compile(r"Google-PageRenderer"), "Google page renderer"),
    (re.compile(r"WhatsApp/"), "WhatsApp link preview"),
    (re.compile(r"TelegramBot"), "Telegram link preview"),
    (re.compile(r"^Viber(?:/[\d.]+)?$"), "Viber link preview"),
    (
        re.compile(
            r"^Mozilla/5\.0 \(X11; Ubuntu; Linux x86_64; rv:24\.0\) Gecko/20100101 "
            r"Firefox/24\.0$"
        ),
        "Samsung Messages link preview",
    ),
    (
        re.compile(
            r"SkypeUriPreview|Slackbot-LinkExpanding|Discordbot|LinkedInBot|Snap URL Preview"
        ),
        "messenger link preview",
    ),
    (
        re.compile(
            r"(?i)\b(?:proofpoint|mimecast|barracuda|symantec|zscaler|trend ?micro|urlscan|"
            r"virustotal|netcraft|bitdefender|sophos|forcepoint|fortiguard|palo ?alto networks|"
            r"check ?point|cisco talos|safebrowsing|phishtank|mailscanner)\b"
        ),
        "security scanner",
    ),
)

# A desktop-class user agent (Windows, a Mac, Linux desktops, ChromeOS), unless it says it is
# mobile. (An iPad asks for desktop sites and says Macintosh: it counts as a desktop here, a weak
# signal that is never alone enough.)
_DESKTOP = re.compile(r"Windows NT|Macintosh|X11; |CrOS ")
_MOBILE = re.compile(r"Mobile|Android|iPhone")

PREFETCH_HEADERS = {
    "HTTP_PURPOSE": ("prefetch", "preview"),
    "HTTP_SEC_PURPOSE": ("prefetch", "prerender"),
    "HTTP_X_PURPOSE": ("preview", "prefetch", "instant"),
    "HTTP_X_MOZ": ("prefetch",),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    is_bot: bool
    reasons: tuple[str, ...] = ()
    # This hit revealed a burst (3+ addresses on one per-recipient link within the window): the
    # link's earlier hits in the window are judged again (rescan.burst).
    burst: bool = False

    @property
    def text(self) -> str:
        return "; ".join(self.reasons)


HUMAN = Verdict(False, ())


@dataclass(slots=True)
class RequestFacts:
    """What a request tells about its sender. `accept_language` and `prefetch` are None when
    not known (as in `trackly bots check`), which skips their checks."""

    method: str = "GET"
    user_agent: str = ""
    ip: str | None = None
    accept_language: str | None = ""
    prefetch: str | None = ""  # the prefetch header that was sent, e.g. 'Sec-Purpose: prefetch'


def prefetch_header(headers: dict) -> str:
    """The first prefetch/preview header of a request (WSGI keys), as 'Name: value', or ''."""
    for key, markers in PREFETCH_HEADERS.items():
        value = headers.get(key)
        if value and any(m in value.lower() for m in markers):
            name = "-".join(part.capitalize() for part in key[5:].split("_"))
            return f"{name}: {value[:40]}"
    return ""


class RecentHits:
    """The IPs that hit each per-recipient link in the last few seconds (in memory).

    Per link, each IP's latest hit, oldest first: a hit costs the same however many came
    before it (a flood on one link must not make every hit scan the flood), and a link keeps
    at most MAX_IPS_PER_LINK addresses (beyond a few, the verdict is the same)."""

    MAX_IPS_PER_LINK = 64

    def __init__(self, window: float = IP_WINDOW_SECONDS) -> None:
        self.window = window
        self._hits: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._observed = 0

    def other_ips(self, link_id: str, ip: str | None, now: float) -> int:
        """Record this hit; return how many *other* IPs hit the link within the window."""
        if not ip:
            return 0
        with self._lock:
            self._observed += 1
            if self._observed % 10_000 == 0:
                self._forget(now)
            hits = self._hits.get(link_id)
            if hits is None:  # most hits: the link's first within the window
                self._hits[link_id] = {ip: now}
                return 0
            while hits:
                oldest = next(iter(hits))
                if now - hits[oldest] <= self.window:
                    break
                del hits[oldest]
            others = len(hits) - (ip in hits)
            hits.pop(ip, None)
            hits[ip] = now  # (to the end: the latest hit)
            if len(hits) > self.MAX_IPS_PER_LINK:
                del hits[next(iter(hits))]
            return others

    def _forget(self, now: float) -> None:
        stale = [
            k
            for k, hits in self._hits.items()
            if not hits or now - next(reversed(hits.values())) > self.window
        ]
        for key in stale:
            del self._hits[key]


class Crawlers:
    """crawlerdetect's crawler list, matched the way crawlerdetect matches it (its exclusions
    removed first, then one search of all its patterns), but by RE2, in time linear in the
    user agent's length and without a lock.

    Python's re tries the 1,462 alternatives at every position of the text: 0.75 ms of CPU for
    an iPhone's user agent and 20 ms for 1 kB of random text, so anyone could keep the server
    busy with made-up user agents (#15). RE2 takes 15-150 microseconds for either. It has no
    lookahead: the list's patterns that use one (today only `Yandex(?!Search)`, a literal
    search) are matched by re."""

    def __init__(self) -> None:
        options = re2.Options()
        options.case_sensitive = False
        options.max_mem = 64 << 20  # room for the DFA of the whole list
        plain = [p for p in CRAWLER_PATTERNS if "(?" not in p]
        self.others = [re.compile(p, re.IGNORECASE) for p in CRAWLER_PATTERNS if "(?" in p]
        self.crawlers = re2.compile("(" + "|".join(plain) + ")", options)
        self.exclusions = re2.compile("(" + "|".join(EXCLUDED_PATTERNS) + ")", options)

    def match(self, user_agent: str) -> str | None:
        """The crawler pattern's match in `user_agent`, or None."""
        agent = self.exclusions.sub("", user_agent.strip())
        if not agent:
            return None
        found = self.crawlers.search(agent)
        if found is None:
            for pattern in self.others:
                found = pattern.search(agent)
                if found is not None:
                    break
        return None if found is None else found.group(0)


class Detector:
    """Classifies clicks. Thread-safe; user-agent verdicts are cached per string."""

    def __init__(self, ranges: dict[str, RangeSet] | None = None) -> None:
        self._crawlers = Crawlers()
        self.ranges = ranges or {kind: RangeSet() for kind in ipranges.KINDS}
        self.recent = RecentHits()
        cache = functools.lru_cache(maxsize=65_536)
        self.cached_user_agent_reasons = cache(self._user_agent_reasons)

    def user_agent_reasons(self, user_agent: str) -> tuple[str, ...]:
        """The strong reasons a user agent gives (none for a browser's)."""
        if len(user_agent) > CACHED_USER_AGENT:
            return self._user_agent_reasons(user_agent)
        return self.cached_user_agent_reasons(user_agent)

    @property
    def ranges(self) -> dict[str, RangeSet]:
        return self._ip[0]

    @ranges.setter
    def ranges(self, ranges: dict[str, RangeSet]) -> None:
        # The ranges and the verdicts per IP made from them, swapped together: a lookup that
        # began with the old ranges stores its verdict in the old cache, never in the new one.
        self._ip: tuple[dict[str, RangeSet], dict[str | None, tuple[bool, tuple[str, ...]]]] = (
            ranges,
            {},
        )

    def ip_reasons(self, ip: str | None) -> tuple[bool, tuple[str, ...]]:
        """Whether the IP is on the allow list, and the strong reasons it gives (deny list,
        datacenter): cached per address string until the ranges change."""
        ranges, verdicts = self._ip
        found = verdicts.get(ip)
        if found is None:
            address = ipranges.parse_address(ip)
            if address is not None and ranges["allow"].find(address):
                found = (True, ())
            else:
                reasons = []
                denied = ranges["deny"].find(address)
                if denied:
                    reasons.append(f"IP on the deny list ({denied})")
                datacenter = ranges["datacenter"].find(address)
                if datacenter:
                    reasons.append(f"datacenter IP ({datacenter})")
                found = (False, tuple(reasons))
            if len(verdicts) >= IP_CACHE_SIZE:  # a flood of addresses: start over
                verdicts.clear()
            verdicts[ip] = found
        return found

    def _user_agent_reasons(self, user_agent: str) -> tuple[str, ...]:
        if not user_agent.strip():
            return ("empty user agent",)
        for pattern, name in PREVIEW_FETCHERS:
            if pattern.search(user_agent):
                return (f"user agent: {name}",)
        crawler = self._crawlers.match(user_agent)
        if crawler is not None:
            return (f"user agent: crawler ({crawler})",)
        return ()

    def classify(
        self,
        facts: RequestFacts,
        *,
        seconds_since_sent: float | None = None,
        min_human_seconds: float = 2.0,
        link_id: str | None = None,
        now: float | None = None,
        timed_from: str = "sending",
    ) -> Verdict:
        """The verdict on one request. `link_id` is given for per-recipient links, whose hits
        from several IPs within seconds are a scanner's signature. `seconds_since_sent` counts
        from `timed_from`: the message's sending, or its delivery once a receipt gave it."""
        strong: list[str] = []
        weak: list[str] = []
        if facts.method in ("HEAD", "OPTIONS"):
            strong.append(f"{facts.method} request")
        if facts.prefetch:
            strong.append(f"prefetch header ({facts.prefetch})")
        user_agent = facts.user_agent or ""
        if len(user_agent) > MAX_USER_AGENT:  # never cached: a flood of them would pin memory
            strong.append(f"user agent longer than {MAX_USER_AGENT} characters")
        else:
            strong.extend(self.user_agent_reasons(user_agent))
        if facts.accept_language is not None and not facts.accept_language.strip():
            weak.append("no Accept-Language")
        if link_id is not None and _DESKTOP.search(user_agent) and not _MOBILE.search(user_agent):
            # An SMS link opened on a computer happens (a phone mirrored to a desktop), but
            # carriers' and mail gateways' scanners mostly present a desktop Chrome.
            weak.append("desktop browser on an SMS link")
        allowed, ip_reasons = self.ip_reasons(facts.ip)
        if not allowed:
            strong.extend(ip_reasons)
            if seconds_since_sent is not None and seconds_since_sent < min_human_seconds:
                weak.append(f"{max(seconds_since_sent, 0):.1f} s after {timed_from}")
            if link_id is not None:
                others = self.recent.other_ips(
                    link_id, facts.ip, time.monotonic() if now is None else now
                )
                if others >= 2:
                    strong.append(f"{others + 1} IPs on one link within {IP_WINDOW_SECONDS:.0f} s")
                    return Verdict(True, tuple(strong + weak), burst=True)
                elif others == 1:
                    weak.append(f"2 IPs on one link within {IP_WINDOW_SECONDS:.0f} s")
        if not strong and not weak:
            return HUMAN
        return Verdict(bool(strong) or len(weak) >= 2, tuple(strong + weak))


def check(
    detector: Detector, user_agent: str | None, ip: str | None, method: str = "GET"
) -> Verdict:
    """`trackly bots check`: the verdict the server would give a request with this user agent
    (and IP), or, without a user agent, what the IP alone says (deny list, datacenter ranges)."""
    if ip is not None and ipranges.parse_address(ip) is None:
        raise InvalidInput(f"--ip {ip!r} is not an IP address such as 203.0.113.7 or 2001:db8::1")
    if user_agent is None and ip is None:
        raise InvalidInput("give --ua, --ip, or both")
    method = method.upper()
    if user_agent is not None:
        facts = RequestFacts(method, user_agent, ip, accept_language=None, prefetch=None)
        return detector.classify(facts)
    allowed, reasons = detector.ip_reasons(ip)
    strong = [f"{method} request"] if method in ("HEAD", "OPTIONS") else []
    if not allowed:
        strong.extend(reasons)
    return Verdict(bool(strong), tuple(strong))
