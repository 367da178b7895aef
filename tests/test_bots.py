"""Bot detection: the Detector's layers and its strong/weak rule, the user-agent cache, the
recent-IP window, IP range sets and the providers' files, and the `trackly bots` commands
(check, ranges import/add/remove/list, rescan) on a real SQLite file."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS, query

from trackly_cli.core import bots, ipranges
from trackly_cli.core.bots import HUMAN, Detector, RecentHits, RequestFacts
from trackly_cli.core.errors import InvalidInput
from trackly_cli.core.ipranges import RangeSet

BROWSER = HUMAN_HEADERS["User-Agent"]
CURL = "curl/8.5.0"


def facts(**changes) -> RequestFacts:
    """A phone browser's GET with Accept-Language, from a residential-looking address."""
    base = {
        "method": "GET",
        "user_agent": BROWSER,
        "ip": "198.51.100.7",
        "accept_language": "en-US,en;q=0.9",
        "prefetch": "",
    }
    return RequestFacts(**(base | changes))


def ranges(**kinds: list[tuple[str, str]]) -> dict[str, RangeSet]:
    return {kind: RangeSet.build(kinds.get(kind, [])) for kind in ipranges.KINDS}


def ip(text: str):
    return ipaddress.ip_address(text)


@pytest.fixture(scope="module")
def detector() -> Detector:
    """A detector without IP ranges, for checks that keep no per-link state."""
    return Detector()


# --- Detector.classify: each signal -----------------------------------------------------------


def test_a_phone_browser_is_human(detector):
    verdict = detector.classify(facts(), seconds_since_sent=3600)
    assert verdict == bots.HUMAN
    assert verdict.reasons == ()
    assert verdict.text == ""


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_are_bots(detector, method):
    verdict = detector.classify(facts(method=method))
    assert verdict.is_bot
    assert verdict.reasons == (f"{method} request",)


@pytest.mark.parametrize("user_agent", ["", "   "])
def test_an_empty_user_agent_is_a_bot(detector, user_agent):
    verdict = detector.classify(facts(user_agent=user_agent))
    assert verdict.is_bot
    assert verdict.reasons == ("empty user agent",)


def test_a_prefetch_header_is_a_bot(detector):
    verdict = detector.classify(facts(prefetch="Sec-Purpose: prefetch"))
    assert verdict.is_bot
    assert verdict.reasons == ("prefetch header (Sec-Purpose: prefetch)",)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HTTP_PURPOSE": "prefetch"}, "Purpose: prefetch"),
        ({"HTTP_SEC_PURPOSE": "prefetch;prerender"}, "Sec-Purpose: prefetch;prerender"),
        ({"HTTP_X_PURPOSE": "preview"}, "X-Purpose: preview"),
        ({"HTTP_X_MOZ": "prefetch"}, "X-Moz: prefetch"),
        ({"HTTP_PURPOSE": "PREFETCH"}, "Purpose: PREFETCH"),
        ({"HTTP_PURPOSE": "navigate"}, ""),
        ({"HTTP_ACCEPT": "text/html"}, ""),
        ({}, ""),
    ],
)
def test_prefetch_header_names_the_header_that_was_sent(environ, expected):
    assert bots.prefetch_header(environ) == expected


def test_an_oversized_user_agent_is_a_bot(detector):
    verdict = detector.classify(facts(user_agent="Mozilla/5.0 " + "x" * 2000))
    assert verdict.is_bot
    assert verdict.reasons == ("user agent longer than 1024 characters",)


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler"),
        (CURL, "crawler"),
        ("python-requests/2.31.0", "crawler"),
        ("facebookexternalhit/1.1 Facebot Twitterbot/1.0", "iMessage link preview"),
        ("Mozilla/5.0 (Linux; Android 14) GoogleMessages", "Google Messages link preview"),
        ("Mozilla/5.0 (Linux; Android 11) Google-PageRenderer", "Google page renderer"),
        ("WhatsApp/2.23.20.0 A", "WhatsApp link preview"),
        ("TelegramBot (like TwitterBot)", "Telegram link preview"),
        ("Viber", "Viber link preview"),
        ("Viber/20.3.0", "Viber link preview"),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:24.0) Gecko/20100101 Firefox/24.0",
            "Samsung Messages link preview",
        ),
        ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", "security scanner"),
        ("Mimecast URL Protect", "security scanner"),
    ],
)
def test_crawlers_and_preview_fetchers_are_bots_with_a_specific_reason(
    detector, user_agent, reason
):
    verdict = detector.classify(facts(user_agent=user_agent))
    assert verdict.is_bot
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("user agent: ")
    assert reason in verdict.reasons[0]


@pytest.mark.parametrize(
    "user_agent",
    [
        BROWSER,
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko)"
        " SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        # A current Firefox on Ubuntu is not Samsung Messages' fixed string.
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
        # An app's in-app browser that mentions Viber is not the bare preview fetcher.
        BROWSER + " Viber/20.3",
    ],
)
def test_real_browsers_are_not_bots(detector, user_agent):
    assert detector.classify(facts(user_agent=user_agent)) == bots.HUMAN


def test_one_weak_signal_is_human_two_are_a_bot(detector):
    no_language = detector.classify(facts(accept_language=""))
    assert not no_language.is_bot
    assert no_language.reasons == ("no Accept-Language",)

    fast = detector.classify(facts(), seconds_since_sent=0.5, min_human_seconds=2)
    assert not fast.is_bot
    assert fast.reasons == ("0.5 s after sending",)

    both = detector.classify(facts(accept_language=""), seconds_since_sent=0.5)
    assert both.is_bot
    assert set(both.reasons) == {"no Accept-Language", "0.5 s after sending"}
    assert both.text == "; ".join(both.reasons)


def test_min_human_seconds_decides_what_is_fast(detector):
    assert detector.classify(facts(accept_language=""), seconds_since_sent=5).reasons == (
        "no Accept-Language",
    )
    slow_list = detector.classify(
        facts(accept_language=""), seconds_since_sent=5, min_human_seconds=30
    )
    assert slow_list.is_bot
    assert not detector.classify(
        facts(accept_language=""), seconds_since_sent=0.5, min_human_seconds=0
    ).is_bot
    # A message created "in the future" (clock skew) reads as 0 s, not negative.
    skewed = detector.classify(facts(), seconds_since_sent=-3)
    assert skewed.reasons == ("0.0 s after sending",)


def test_unknown_accept_language_and_prefetch_are_not_judged(detector):
    # `trackly bots check` knows neither: None skips those checks.
    verdict = detector.classify(facts(accept_language=None, prefetch=None))
    assert verdict == bots.HUMAN


def test_strong_signals_are_all_listed(detector):
    verdict = detector.classify(
        facts(method="HEAD", user_agent=CURL, prefetch="Purpose: prefetch", accept_language="")
    )
    assert verdict.is_bot
    assert verdict.reasons[0] == "HEAD request"
    assert verdict.reasons[1] == "prefetch header (Purpose: prefetch)"
    assert verdict.reasons[2].startswith("user agent: crawler")
    assert verdict.reasons[3] == "no Accept-Language"  # weak signals come last


def test_deny_list_and_datacenter_ranges():
    detector = Detector(
        ranges(deny=[("203.0.113.0/24", "manual")], datacenter=[("192.0.2.0/24", "aws")])
    )
    denied = detector.classify(facts(ip="203.0.113.50"))
    assert denied.is_bot
    assert denied.reasons == ("IP on the deny list (manual)",)
    cloud = detector.classify(facts(ip="192.0.2.1"))
    assert cloud.is_bot
    assert cloud.reasons == ("datacenter IP (aws)",)
    mapped = detector.classify(facts(ip="::ffff:192.0.2.1"))
    assert mapped.reasons == ("datacenter IP (aws)",)
    assert detector.classify(facts(ip="198.51.100.1")) == bots.HUMAN
    for odd in (None, "", "not-an-ip", "unix:/tmp/socket"):
        assert detector.classify(facts(ip=odd)) == bots.HUMAN


def test_allow_list_skips_ip_and_timing_but_not_the_request_or_user_agent():
    detector = Detector(
        ranges(
            deny=[("203.0.113.0/24", "manual")],
            datacenter=[("203.0.113.0/24", "aws")],
            allow=[("203.0.113.7/32", "manual")],
        )
    )
    allowed = facts(ip="203.0.113.7")
    assert detector.classify(allowed) == bots.HUMAN
    # Timing is skipped too: only the missing Accept-Language is left, and it is weak.
    verdict = detector.classify(facts(ip="203.0.113.7", accept_language=""), seconds_since_sent=0.1)
    assert not verdict.is_bot
    assert verdict.reasons == ("no Accept-Language",)
    for n in range(5):
        assert not detector.classify(allowed, link_id="L", now=100 + n).is_bot
    # The user agent and the request shape still count.
    crawler = detector.classify(facts(ip="203.0.113.7", user_agent=CURL))
    assert crawler.is_bot
    assert [r for r in crawler.reasons if "IP" in r] == []
    assert detector.classify(facts(ip="203.0.113.7", method="HEAD")).is_bot
    # A neighbour is not allowed.
    assert set(detector.classify(facts(ip="203.0.113.8")).reasons) == {
        "IP on the deny list (manual)",
        "datacenter IP (aws)",
    }


def test_several_ips_on_one_link_within_the_window():
    detector = Detector()
    first = detector.classify(facts(ip="192.0.2.1"), link_id="abcdefg", now=1000.0)
    assert first == bots.HUMAN
    second = detector.classify(facts(ip="192.0.2.2"), link_id="abcdefg", now=1001.0)
    assert not second.is_bot
    assert second.reasons == ("2 IPs on one link within 10 s",)
    third = detector.classify(facts(ip="192.0.2.3"), link_id="abcdefg", now=1002.0)
    assert third.is_bot
    assert third.reasons == ("3 IPs on one link within 10 s",)
    # A second IP plus a missing Accept-Language: two weak signals.
    other = detector.classify(facts(ip="192.0.2.1"), link_id="hijklmn", now=1000.0)
    assert other == bots.HUMAN
    both = detector.classify(
        facts(ip="192.0.2.9", accept_language=""), link_id="hijklmn", now=1000.5
    )
    assert both.is_bot
    # Links without a recipient (link_id None) are not watched.
    for n in range(5):
        assert detector.classify(facts(ip=f"192.0.2.{n}"), now=1000.0 + n) == bots.HUMAN


# --- the user-agent cache ---------------------------------------------------------------------


def test_each_user_agent_string_is_classified_once():
    detector = Detector()
    cache = detector.cached_user_agent_reasons
    start = cache.cache_info()
    first = detector.classify(facts(user_agent=CURL))
    after_first = cache.cache_info()
    assert after_first.misses == start.misses + 1
    for n in range(5):
        assert detector.classify(facts(user_agent=CURL, ip=f"192.0.2.{n}")) == first
    info = cache.cache_info()
    assert info.hits == after_first.hits + 5
    assert info.misses == after_first.misses
    detector.classify(facts(user_agent=BROWSER))
    assert cache.cache_info().misses == info.misses + 1
    assert cache.cache_info().currsize == 2


def test_the_cache_belongs_to_the_detector():
    one, two = Detector(), Detector()
    one.classify(facts(user_agent=CURL))
    assert two.cached_user_agent_reasons.cache_info().currsize == 0


# --- RecentHits -------------------------------------------------------------------------------


def test_recent_hits_counts_other_ips_within_the_window():
    recent = RecentHits(window=10)
    assert recent.other_ips("L", "192.0.2.1", now=100.0) == 0
    assert recent.other_ips("L", "192.0.2.1", now=101.0) == 0  # the same IP again
    assert recent.other_ips("L", "192.0.2.2", now=102.0) == 1
    assert recent.other_ips("L", "192.0.2.1", now=103.0) == 1
    assert recent.other_ips("L", "192.0.2.3", now=104.0) == 2
    assert recent.other_ips("M", "192.0.2.9", now=104.0) == 0  # links are apart
    # 110.0 - 100.0 is not more than the window: the hit at 100 still counts.
    assert recent.other_ips("L", "192.0.2.4", now=110.0) == 3
    # At 114.5 every hit up to 104 is more than 10 s old: only .4 (at 110) is left.
    assert recent.other_ips("L", "192.0.2.5", now=114.5) == 1
    assert recent.other_ips("L", "192.0.2.6", now=200.0) == 0


def test_a_flood_on_one_link_costs_each_hit_no_more_than_the_first():
    """Thousands of hits on one link within the window: each is as cheap as a lone one (the
    tracker used to scan every earlier hit of the window, so a flood grew quadratically)."""
    import time

    recent = RecentHits(window=10)
    for n in range(20_000):
        recent.other_ips("L", "192.0.2.1", now=100.0 + n / 10_000)
    started = time.perf_counter()
    for n in range(2_000):
        recent.other_ips("L", "192.0.2.1", now=102.0 + n / 10_000)
    flood = time.perf_counter() - started
    started = time.perf_counter()
    for n in range(2_000):
        recent.other_ips(f"M{n}", "192.0.2.1", now=102.0)
    lone = time.perf_counter() - started
    assert flood < 5 * lone + 0.01
    # ...and a link keeps a bounded number of addresses, the verdict unchanged.
    for n in range(1_000):
        recent.other_ips("N", f"10.0.{n // 250}.{n % 250}", now=200.0)
    assert recent.other_ips("N", "192.0.2.1", now=200.5) == RecentHits.MAX_IPS_PER_LINK


def test_recent_hits_ignores_missing_ips():
    recent = RecentHits(window=10)
    assert recent.other_ips("L", None, now=1.0) == 0
    assert recent.other_ips("L", "", now=1.0) == 0
    assert recent.other_ips("L", "192.0.2.1", now=2.0) == 0


def test_recent_hits_window_is_configurable():
    recent = RecentHits(window=1)
    assert recent.other_ips("L", "192.0.2.1", now=0.0) == 0
    assert recent.other_ips("L", "192.0.2.2", now=0.5) == 1
    assert recent.other_ips("L", "192.0.2.3", now=2.0) == 0


# --- RangeSet ---------------------------------------------------------------------------------


def test_range_set_merges_overlapping_and_adjacent_ranges():
    rs = RangeSet.build(
        [
            ("10.1.0.0/16", "inner"),
            ("10.0.0.0/8", "outer"),
            ("192.0.2.0/25", "low"),
            ("192.0.2.128/25", "high"),  # adjacent: one interval
            ("198.51.100.0/24", "doc"),
        ]
    )
    assert len(rs) == 3
    assert rs.find(ip("10.1.2.3")) == "outer"  # merged; the first (lowest) range's label stays
    assert rs.find(ip("10.200.0.1")) == "outer"
    assert rs.find(ip("192.0.2.0")) == "low"
    assert rs.find(ip("192.0.2.255")) == "low"
    assert rs.find(ip("198.51.100.0")) == "doc"
    assert rs.find(ip("198.51.100.255")) == "doc"
    for outside in ("9.255.255.255", "11.0.0.0", "192.0.1.255", "192.0.3.0", "198.51.101.0"):
        assert rs.find(ip(outside)) is None, outside
    assert rs.find(ip("0.0.0.0")) is None
    assert rs.find(ip("255.255.255.255")) is None


def test_range_set_ipv6_and_ipv4_mapped_addresses():
    rs = RangeSet.build([("2001:db8::/32", "v6"), ("203.0.113.0/24", "v4"), ("::/96", "low v6")])
    assert rs.find(ip("2001:db8::1")) == "v6"
    assert rs.find(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")) == "v6"
    assert rs.find(ip("2001:db9::")) is None
    assert rs.find(ip("2001:db7:ffff::")) is None
    assert rs.find(ip("::ffff:203.0.113.9")) == "v4"
    assert rs.find(ip("::ffff:203.0.114.9")) is None
    # An IPv4 address is looked up among IPv4 ranges only, even where its integer value falls
    # inside an IPv6 range.
    assert rs.find(ip("1.2.3.4")) is None
    assert rs.find(ip("::102:304")) == "low v6"
    assert rs.find(None) is None


def test_range_set_single_addresses_and_empty_sets():
    rs = RangeSet.build([("192.0.2.7/32", "one"), ("2001:db8::7/128", "one6")])
    assert rs.find(ip("192.0.2.7")) == "one"
    assert rs.find(ip("192.0.2.6")) is None
    assert rs.find(ip("192.0.2.8")) is None
    assert rs.find(ip("2001:db8::7")) == "one6"
    assert rs.find(ip("2001:db8::8")) is None
    empty = RangeSet()
    assert len(empty) == 0
    assert empty.find(ip("192.0.2.7")) is None
    assert empty.find(ip("2001:db8::7")) is None


def test_range_set_agrees_with_ipaddress_on_many_addresses():
    networks = ["10.0.0.0/30", "10.0.0.8/29", "10.0.0.4/31", "10.0.1.0/24", "10.0.0.200/32"]
    rs = RangeSet.build([(n, n) for n in networks])
    parsed = [ipaddress.ip_network(n) for n in networks]
    for last in range(0, 256):
        for third in (0, 1, 2):
            address = ip(f"10.0.{third}.{last}")
            inside = any(address in n for n in parsed)
            assert (rs.find(address) is not None) == inside, address


def test_parse_address():
    assert ipranges.parse_address("192.0.2.1") == ip("192.0.2.1")
    assert ipranges.parse_address("fe80::1%eth0") == ip("fe80::1")
    assert ipranges.parse_address("") is None
    assert ipranges.parse_address(None) is None
    assert ipranges.parse_address("999.1.1.1") is None
    assert ipranges.parse_address("localhost") is None


# --- provider files ---------------------------------------------------------------------------

AWS = {
    "syncToken": "1732800000",
    "createDate": "2026-11-28-12-00-00",
    "prefixes": [
        {
            "ip_prefix": "3.5.140.0/22",
            "region": "ap-northeast-2",
            "service": "AMAZON",
            "network_border_group": "ap-northeast-2",
        },
        {
            "ip_prefix": "52.94.76.0/22",
            "region": "us-west-2",
            "service": "EC2",
            "network_border_group": "us-west-2",
        },
    ],
    "ipv6_prefixes": [
        {
            "ipv6_prefix": "2600:1f14::/35",
            "region": "us-west-2",
            "service": "EC2",
            "network_border_group": "us-west-2",
        }
    ],
}

# Google's cloud.json and goog.json, as published (both carry syncToken and creationTime).
GOOGLE = {
    "syncToken": "1732800000000",
    "creationTime": "2026-11-28T12:00:00.000000",
    "prefixes": [
        {"ipv4Prefix": "34.1.208.0/20", "service": "Google Cloud", "scope": "africa-south1"},
        {"ipv6Prefix": "2600:1900:8000::/44", "service": "Google Cloud", "scope": "us-east1"},
    ],
}

PLAIN_LIST = """# Datacenter ranges, one per line
# (comments and blank lines are fine)

192.0.2.0/24
198.51.100.7          # a single address
  2001:db8::/32
203.0.113.0/24 # trailing comment
"""


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def test_parse_aws_ip_ranges(tmp_path):
    fmt, cidrs = ipranges.parse_file(write_json(tmp_path / "ip-ranges.json", AWS))
    assert fmt == "aws"
    assert cidrs == ["3.5.140.0/22", "52.94.76.0/22", "2600:1f14::/35"]


def test_parse_google_cloud_json(tmp_path):
    fmt, cidrs = ipranges.parse_file(write_json(tmp_path / "cloud.json", GOOGLE))
    assert fmt == "google"
    assert cidrs == ["34.1.208.0/20", "2600:1900:8000::/44"]


def test_parse_google_json_without_sync_token(tmp_path):
    bare = {"prefixes": GOOGLE["prefixes"]}
    fmt, cidrs = ipranges.parse_file(write_json(tmp_path / "goog.json", bare))
    assert fmt == "google"
    assert cidrs == ["34.1.208.0/20", "2600:1900:8000::/44"]


def test_parse_plain_list(tmp_path):
    (tmp_path / "hosting.txt").write_text(PLAIN_LIST, encoding="utf-8")
    fmt, cidrs = ipranges.parse_file(tmp_path / "hosting.txt")
    assert fmt == "list"
    assert cidrs == ["192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32", "203.0.113.0/24"]


def test_parse_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("192.0.2.0/24\n# ok\nnot-a-range\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="line 3"):
        ipranges.parse_file(bad)
    with pytest.raises(InvalidInput, match="cannot read"):
        ipranges.parse_file(tmp_path / "missing.txt")


# --- trackly bots ranges ----------------------------------------------------------------------


def stored_ranges(db_path: Path) -> list[tuple[str, str, str]]:
    return [
        (r["kind"], r["cidr"], r["source"])
        for r in query(db_path, "SELECT kind, cidr, source FROM ip_ranges ORDER BY kind, cidr")
    ]


def test_import_aws_google_and_a_plain_list(acme, db_path, tmp_path):
    aws = acme.json("bots", "ranges", "import", write_json(tmp_path / "ip-ranges.json", AWS))
    assert aws["kind"] == "datacenter"
    assert aws["source"] == "aws"
    assert aws["format"] == "aws"
    assert aws["ranges"] == 3
    # (Google's file in the shape without syncToken: the published one has its own test.)
    bare_google = {"prefixes": GOOGLE["prefixes"]}
    google = acme.json("bots", "ranges", "import", write_json(tmp_path / "goog.json", bare_google))
    assert (google["source"], google["format"], google["ranges"]) == ("google", "google", 2)
    (tmp_path / "hosting.txt").write_text(PLAIN_LIST, encoding="utf-8")
    hosting = acme.json("bots", "ranges", "import", tmp_path / "hosting.txt")
    assert (hosting["source"], hosting["format"], hosting["ranges"]) == ("hosting", "list", 4)

    summary = acme.json("bots", "ranges", "list")
    assert {(s["kind"], s["source"], s["ranges"]) for s in summary} == {
        ("datacenter", "aws", 3),
        ("datacenter", "google", 2),
        ("datacenter", "hosting", 4),
    }
    assert len(stored_ranges(db_path)) == 9


def test_import_as_deny_or_allow_with_a_source_name(acme, db_path, tmp_path):
    (tmp_path / "office.txt").write_text("203.0.113.0/24\n", encoding="utf-8")
    acme("bots", "ranges", "import", tmp_path / "office.txt", "--kind", "allow", "--source", "hq")
    assert stored_ranges(db_path) == [("allow", "203.0.113.0/24", "hq")]


def test_reimport_replaces_the_same_source(acme, db_path, tmp_path):
    path = tmp_path / "hosting.txt"
    path.write_text("192.0.2.0/24\n198.51.100.0/24\n", encoding="utf-8")
    acme("bots", "ranges", "import", path)
    acme("bots", "ranges", "add", "203.0.113.0/24")  # another source stays
    path.write_text("10.0.0.0/8\n", encoding="utf-8")
    result = acme.json("bots", "ranges", "import", path)
    assert result["replaced"] == 2
    assert result["ranges"] == 1
    assert stored_ranges(db_path) == [
        ("datacenter", "10.0.0.0/8", "hosting"),
        ("deny", "203.0.113.0/24", "manual"),
    ]


def test_reimporting_a_provider_file_replaces_only_that_provider(acme, db_path, tmp_path):
    """Google's published cloud.json carries a syncToken like AWS's file: importing it must not
    take the place of the AWS ranges, nor the AWS file that of Google's."""
    acme("bots", "ranges", "import", write_json(tmp_path / "ip-ranges.json", AWS))
    acme("bots", "ranges", "import", write_json(tmp_path / "cloud.json", GOOGLE))
    newer = dict(AWS, prefixes=AWS["prefixes"][:1], ipv6_prefixes=[])
    acme("bots", "ranges", "import", write_json(tmp_path / "ip-ranges.json", newer))
    sources = {(s["source"], s["ranges"]) for s in acme.json("bots", "ranges", "list")}
    assert sources == {("aws", 1), ("google", 2)}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"prefixes": [', "not valid JSON"),
        ('{"syncToken": "1", "prefixes": [{"ip_prefix": "3.5.140.0/33"}]}', "3.5.140.0/33"),
        ('{"something": "else"}', "prefixes"),
        ("192.0.2.0/24\n198.51.100.0/24\n# fine\n203.0.113.300/24\n", "line 4"),
        ("192.0.2.0/24\nhello world\n", "line 2"),
        ("", "no IP ranges"),
        ("# only comments\n\n   \n", "no IP ranges"),
    ],
    ids=[
        "bad-json",
        "bad-json-cidr",
        "json-without-prefixes",
        "bad-cidr",
        "words",
        "empty",
        "comments",
    ],
)
def test_bad_files_are_refused_whole(acme, db_path, tmp_path, content, expected):
    acme("bots", "ranges", "add", "--kind", "datacenter", "100.64.0.0/10")
    path = tmp_path / "ranges.txt"
    path.write_text(content, encoding="utf-8")
    message = acme.error("bots", "ranges", "import", path)
    assert expected in message
    assert stored_ranges(db_path) == [("datacenter", "100.64.0.0/10", "manual")]


def test_a_bad_file_does_not_replace_a_good_import(acme, db_path, tmp_path):
    path = tmp_path / "hosting.txt"
    path.write_text("192.0.2.0/24\n", encoding="utf-8")
    acme("bots", "ranges", "import", path)
    path.write_text("198.51.100.0/24\nnope\n", encoding="utf-8")
    assert "line 2" in acme.error("bots", "ranges", "import", path)
    assert stored_ranges(db_path) == [("datacenter", "192.0.2.0/24", "hosting")]


def test_import_of_a_missing_file_is_an_error(acme, tmp_path):
    message = acme.error("bots", "ranges", "import", tmp_path / "missing.json")
    assert "missing.json" in message


def test_ranges_add_list_and_remove(acme, db_path):
    acme("bots", "ranges", "add", "203.0.113.0/24", "198.51.100.7")
    acme("bots", "ranges", "add", "--kind", "allow", "198.51.100.7")
    acme("bots", "ranges", "add", "203.0.113.0/24")  # again: no duplicate
    assert stored_ranges(db_path) == [
        ("allow", "198.51.100.7/32", "manual"),
        ("deny", "198.51.100.7/32", "manual"),
        ("deny", "203.0.113.0/24", "manual"),
    ]
    summary = acme.json("bots", "ranges", "list")
    assert {(s["kind"], s["source"], s["ranges"]) for s in summary} == {
        ("allow", "manual", 1),
        ("deny", "manual", 2),
    }
    assert all(s["imported_at"] for s in summary)

    acme("bots", "ranges", "remove", "203.0.113.0/24")
    acme("bots", "ranges", "remove", "198.51.100.7", "--kind", "allow")
    assert stored_ranges(db_path) == [("deny", "198.51.100.7/32", "manual")]
    assert "no IP range matches" in acme.error("bots", "ranges", "remove", "10.0.0.0/8")
    acme("bots", "ranges", "remove", "--source", "manual")
    assert stored_ranges(db_path) == []
    assert acme.json("bots", "ranges", "list") == []


def test_ranges_add_refuses_a_bad_cidr_and_writes_nothing(acme, db_path):
    message = acme.error("bots", "ranges", "add", "192.0.2.0/24", "192.0.2.0/40")
    assert "192.0.2.0/40" in message
    assert stored_ranges(db_path) == []
    assert "say what to remove" in acme.error("bots", "ranges", "remove")


# --- trackly bots check -----------------------------------------------------------------------


def test_bots_check_json(acme):
    verdict = acme.json("bots", "check", "--ua", CURL)
    assert verdict["is_bot"] is True
    assert any("crawler" in r for r in verdict["reasons"])

    verdict = acme.json("bots", "check", "--ua", BROWSER, "--ip", "198.51.100.7")
    assert verdict["is_bot"] is False
    assert verdict["reasons"] == []

    verdict = acme.json("bots", "check", "--ua", "WhatsApp/2.23.20.0 A")
    assert verdict["reasons"] == ["user agent: WhatsApp link preview"]

    verdict = acme.json("bots", "check", "--ua", BROWSER, "--method", "head")
    assert verdict["is_bot"] is True
    assert verdict["reasons"] == ["HEAD request"]


def test_bots_check_uses_the_stored_ranges(acme):
    acme("bots", "ranges", "add", "--kind", "datacenter", "192.0.2.0/24")
    acme("bots", "ranges", "add", "--kind", "allow", "192.0.2.9")
    verdict = acme.json("bots", "check", "--ua", BROWSER, "--ip", "192.0.2.1")
    assert verdict["is_bot"] is True
    assert verdict["reasons"] == ["datacenter IP (manual)"]
    assert acme.json("bots", "check", "--ua", BROWSER, "--ip", "192.0.2.9")["is_bot"] is False
    verdict = acme.json("bots", "check", "--ua", CURL, "--ip", "192.0.2.9")
    assert verdict["is_bot"] is True


def test_bots_check_table(acme):
    result = acme("bots", "check", "--ua", CURL)
    assert "bot" in result.stdout
    assert "crawler" in result.stdout
    assert "human" in acme("bots", "check", "--ua", BROWSER).stdout


# --- trackly bots rescan ----------------------------------------------------------------------


def totals(db_path: Path) -> dict:
    return query(
        db_path,
        "SELECT sum(clicks) AS clicks, sum(bot_clicks) AS bot_clicks,"
        " sum(unique_clicks) AS unique_clicks, sum(conversions) AS conversions,"
        " sum(unattributed_conversions) AS unattributed FROM report_rollups",
    )[0]


@pytest.mark.parametrize("per_transaction", [500, 1])
def test_rescan_follows_imported_ranges_both_ways(
    campaign, acme, webapp, db_path, tmp_path, monkeypatch, per_transaction
):
    """(Also with one message's changes per transaction: the result is the same.)"""
    from trackly_cli.core import rescan

    monkeypatch.setattr(rescan, "MESSAGES_PER_TRANSACTION", per_transaction)
    app = webapp()  # requests come from 198.51.100.7
    first, second = campaign["by_slot"]["link1"][:2]
    app.get(f"/{first['id']}", headers=HUMAN_HEADERS)
    app.get(f"/{first['id']}", headers=HUMAN_HEADERS)
    app.get(f"/{second['id']}", headers=HUMAN_HEADERS)
    # A visitor elsewhere, untouched by the ranges below.
    third = campaign["by_slot"]["link1"][2]
    app.get(f"/{third['id']}", headers=HUMAN_HEADERS, extra_environ={"REMOTE_ADDR": "192.0.2.1"})
    r = app.get("/conv", {"link_id": first["id"], "revenue": "10", "txn_id": "T1"})
    assert r.json["status"] == "recorded"
    assert r.json["attribution"] == "attributed"
    before = query(db_path, "SELECT * FROM message_clicks ORDER BY id")
    assert [m["source"] for m in before] == ["click", "click", "click"]
    assert totals(db_path) == {
        "clicks": 4,
        "bot_clicks": 0,
        "unique_clicks": 3,
        "conversions": 1,
        "unattributed": 0,
    }

    (tmp_path / "dc.txt").write_text("198.51.100.0/24\n", encoding="utf-8")
    acme("bots", "ranges", "import", tmp_path / "dc.txt")
    result = acme.json("bots", "rescan")
    assert result["clicks"] == 4
    assert result["to_bot"] == 3
    assert result["to_human"] == 0
    assert result["message_clicks_removed"] == 2
    assert result["message_clicks_added"] == 0
    assert result["conversions_reattributed"] == 1

    raw = query(db_path, "SELECT * FROM message_short_link_clicks ORDER BY id")
    assert [c["is_bot"] for c in raw] == [1, 1, 1, 0]
    assert all("datacenter IP (dc)" in c["bot_reasons"] for c in raw[:3])
    [kept] = query(db_path, "SELECT * FROM message_clicks")
    assert kept["message_id"] == third["message_id"]
    [conversion] = query(db_path, "SELECT * FROM conversions")
    assert conversion["attribution"] == "no_click"
    assert conversion["message_click_id"] is None
    assert totals(db_path) == {
        "clicks": 4,
        "bot_clicks": 3,
        "unique_clicks": 1,
        "conversions": 0,
        "unattributed": 1,
    }

    # Nothing changed: a second rescan changes nothing.
    again = acme.json("bots", "rescan")
    assert (again["to_bot"], again["to_human"], again["conversions_reattributed"]) == (0, 0, 0)

    acme("bots", "ranges", "remove", "--source", "dc")
    result = acme.json("bots", "rescan")
    assert result["to_human"] == 3
    assert result["message_clicks_added"] == 2
    assert result["conversions_reattributed"] == 1
    raw = query(db_path, "SELECT * FROM message_short_link_clicks ORDER BY id")
    assert [(c["is_bot"], c["bot_reasons"]) for c in raw] == [(0, "")] * 4
    restored = query(db_path, "SELECT * FROM message_clicks ORDER BY message_id")
    assert len(restored) == 3
    by_message = {m["message_id"]: m for m in restored}
    assert by_message[first["message_id"]]["click_id"] == raw[0]["id"]  # the first click
    assert by_message[first["message_id"]]["source"] == "rescan"
    assert by_message[second["message_id"]]["click_id"] == raw[2]["id"]
    [conversion] = query(db_path, "SELECT * FROM conversions")
    assert conversion["attribution"] == "attributed"
    assert conversion["message_click_id"] == by_message[first["message_id"]]["id"]
    assert totals(db_path) == {
        "clicks": 4,
        "bot_clicks": 0,
        "unique_clicks": 3,
        "conversions": 1,
        "unattributed": 0,
    }


def test_rescan_leaves_continue_button_message_clicks(campaign, acme, webapp, db_path, tmp_path):
    acme("list", "update", "vip", "--bot-filter", "confirm")
    app = webapp()
    link_id = campaign["by_slot"]["link1"][0]["id"]
    app.get(f"/{link_id}", headers=HUMAN_HEADERS)
    app.get(f"/{link_id}/go", headers=HUMAN_HEADERS)
    [confirmed] = query(db_path, "SELECT * FROM message_clicks")
    assert confirmed["source"] == "confirm"
    acme("bots", "ranges", "add", "--kind", "datacenter", "198.51.100.0/24")
    result = acme.json("bots", "rescan")
    assert result["to_bot"] == 1
    assert query(db_path, "SELECT id, source FROM message_clicks") == [
        {"id": confirmed["id"], "source": "confirm"}
    ]


def test_rescan_since_only_touches_recent_clicks(campaign, acme, webapp, db_path):
    app = webapp()
    link = campaign["by_slot"]["link1"][0]
    app.get(f"/{link['id']}", headers=HUMAN_HEADERS)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "UPDATE message_short_link_clicks SET clicked_at = '2026-01-02T00:00:00.000000Z'"
        )
    conn.close()
    acme("bots", "ranges", "add", "198.51.100.7")
    result = acme.json("bots", "rescan", "--since", "1d")
    assert result["clicks"] == 0
    assert query(db_path, "SELECT is_bot FROM message_short_link_clicks") == [{"is_bot": 0}]
    result = acme.json("bots", "rescan")
    assert result["to_bot"] == 1


def test_a_user_agent_over_1kb_is_a_bot_and_never_enters_the_cache():
    detector = Detector()
    huge = "Mozilla/5.0 " + "x" * 5000
    verdict = detector.classify(RequestFacts("GET", huge, "198.51.100.7", "en"))
    assert verdict.is_bot
    assert any("longer than 1024" in r for r in verdict.reasons)
    assert detector.cached_user_agent_reasons.cache_info().currsize == 0


def test_ip_verdicts_are_cached_until_the_ranges_change():
    detector = Detector()
    assert detector.classify(facts(ip="203.0.113.50")) == bots.HUMAN
    assert detector.classify(facts(ip="203.0.113.50")) == bots.HUMAN  # from the cache
    detector.ranges = ranges(deny=[("203.0.113.0/24", "manual")])  # as a settings refresh does
    assert detector.classify(facts(ip="203.0.113.50")).reasons == ("IP on the deny list (manual)",)
    detector.ranges = ranges(
        deny=[("203.0.113.0/24", "manual")], allow=[("203.0.113.50/32", "office")]
    )
    assert detector.classify(facts(ip="203.0.113.50")) == bots.HUMAN
    assert detector.classify(facts(ip="203.0.113.51")).is_bot


def test_the_ip_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(bots, "IP_CACHE_SIZE", 10)
    detector = Detector(ranges(datacenter=[("192.0.2.0/24", "aws")]))
    for n in range(25):
        detector.classify(facts(ip=f"198.51.100.{n}"))
    assert len(detector._ip[1]) <= 10
    assert detector.classify(facts(ip="192.0.2.7")).reasons == ("datacenter IP (aws)",)


# --- a desktop browser on an SMS link (#18) ---------------------------------------------------

DESKTOPS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36",
]
PHONES = [
    BROWSER,
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/119.0.0.0 Safari/537.36",  # an Android tablet: no "Mobile", still not a desktop
]


@pytest.mark.parametrize("user_agent", DESKTOPS)
def test_a_desktop_browser_on_an_sms_link_is_a_weak_signal(detector, user_agent):
    alone = detector.classify(facts(user_agent=user_agent), link_id="aaaaaa1")
    assert not alone.is_bot
    assert alone.reasons == ("desktop browser on an SMS link",)
    with_another = detector.classify(
        facts(user_agent=user_agent, accept_language=""), link_id="aaaaaa2"
    )
    assert with_another.is_bot
    assert set(with_another.reasons) == {"desktop browser on an SMS link", "no Accept-Language"}
    # a link without a recipient (a one-off message's) is no SMS link of one person
    assert detector.classify(facts(user_agent=user_agent)) == HUMAN


@pytest.mark.parametrize("user_agent", PHONES)
def test_a_phone_or_tablet_on_an_sms_link_gives_no_signal(detector, user_agent):
    assert detector.classify(facts(user_agent=user_agent), link_id="aaaaaa3") == HUMAN
