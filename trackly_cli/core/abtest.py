"""A/B verdicts: per variant click rate with a 95% Wilson interval, and a two-proportion z-test
that names the winner at 95% confidence or says how many more sends would settle it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from trackly_cli.core import money, store
from trackly_cli.core.errors import InvalidInput
from trackly_cli.core.reports import epc, percent

Z_95 = 1.959963984540054  # two-sided 95%
Z_POWER = 0.8416212335729143  # 80% power
MIN_EXPECTED = 5  # expected hits (and misses) per variant for the normal approximation


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion, or None without trials."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    """(z, two-sided p) of the difference between two proportions (pooled), or None."""
    if not n1 or not n2:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    if pooled <= 0 or pooled >= 1:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return z, math.erfc(abs(z) / math.sqrt(2))


def sample_size(p1: float, p2: float) -> int | None:
    """Sends per variant to tell p1 from p2 at 95% confidence with 80% power."""
    if p1 == p2:
        return None
    mean = (p1 + p2) / 2
    numerator = (
        Z_95 * math.sqrt(2 * mean * (1 - mean)) + Z_POWER * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2
    return math.ceil(numerator / (p1 - p2) ** 2)


@dataclass
class Verdict:
    metric: str
    winner: str | None
    p_value: float | None
    message: str

    def as_dict(self) -> dict:
        return {
            "metric": self.metric,
            "winner": self.winner,
            "p_value": None if self.p_value is None else round(self.p_value, 6),
            "message": self.message,
        }


def _verdict(metric: str, unit: str, rows: list[dict], hits: str, trials: str) -> Verdict:
    ranked = sorted(rows, key=lambda r: (r[hits] / r[trials]) if r[trials] else -1, reverse=True)
    best, runner = ranked[0], ranked[1]
    test = z_test(best[hits], best[trials], runner[hits], runner[trials])
    if test is None:
        return Verdict(metric, None, None, f"not significant yet: a variant has no {unit}")
    _, p_value = test
    pooled = (best[hits] + runner[hits]) / (best[trials] + runner[trials])
    smallest = min(best[trials], runner[trials])
    if pooled in (0, 1):
        level = "0%" if pooled == 0 else "100%"
        return Verdict(
            metric, None, None, f"not significant yet: every variant is at {level} so far"
        )
    if smallest * min(pooled, 1 - pooled) < MIN_EXPECTED:
        # The z-test's normal approximation needs about 5 expected hits and misses per variant.
        needed = math.ceil(MIN_EXPECTED / max(min(pooled, 1 - pooled), 1e-9))
        return Verdict(
            metric,
            None,
            None,
            f"not significant yet: too few {unit} to test (each variant needs about"
            f" {max(needed, smallest + 1):,})",
        )
    if p_value < 0.05 and best[hits] / best[trials] > runner[hits] / runner[trials]:
        return Verdict(
            metric,
            best["variant"],
            p_value,
            f"{best['variant']} wins on {metric} at 95% confidence"
            f" (p = {p_value:.4f} against {runner['variant']})",
        )
    p1 = best[hits] / best[trials]
    p2 = runner[hits] / runner[trials]
    needed = sample_size(p1, p2)
    if needed is None:
        more = "no difference so far"
    else:
        extra = max(0, needed - min(best[trials], runner[trials]))
        more = (
            f"about {extra:,} more {unit} per variant would settle a difference this size"
            if extra
            else "the difference is too small to matter at this size"
        )
    return Verdict(metric, None, p_value, f"not significant yet (p = {p_value:.2f}): {more}")


def ab(conn: store.Store, campaign: dict) -> dict:
    variants = store.rows(
        conn,
        "SELECT variant, sum(sent) AS sent, sum(unique_clicks) AS unique_clicks,"
        " sum(conversions) AS conversions, sum(revenue_micros) AS revenue_micros"
        " FROM report_rollups WHERE campaign_id = ? GROUP BY variant ORDER BY variant",
        (campaign["id"],),
    )
    names = dict(
        conn.execute(
            "SELECT v.label, c.name FROM campaign_variants v"
            " JOIN creatives c ON c.id = v.creative_id WHERE v.campaign_id = ?",
            (campaign["id"],),
        ).fetchall()
    )
    variants = [v for v in variants if v["variant"]]
    # The conversion-rate test counts clicks that converted (a lead and a sale on one click, or
    # rebills, are several conversions but one converting click).
    converting = dict(
        conn.execute(
            "SELECT variant, count(DISTINCT message_click_id) FROM conversions"
            " WHERE campaign_id = ? AND attribution = 'attributed' AND is_reversal = 0"
            " GROUP BY variant",
            (campaign["id"],),
        ).fetchall()
    )
    if len(variants) < 2:
        raise InvalidInput(
            f"campaign {campaign['name']!r} has one variant: an A/B test needs"
            " two templates (trackly shorten a.txt b.txt --list …)"
        )
    rows = []
    for v in variants:
        interval = wilson(v["unique_clicks"], v["sent"])
        rows.append(
            {
                "variant": v["variant"],
                "creative": names.get(v["variant"]),
                "sent": v["sent"],
                "unique_clicks": v["unique_clicks"],
                "click_rate": percent(v["unique_clicks"], v["sent"]),
                "click_rate_low": None
                if interval is None
                else percent(round(interval[0] * 1_000_000), 1_000_000),
                "click_rate_high": None
                if interval is None
                else percent(round(interval[1] * 1_000_000), 1_000_000),
                "conversions": v["conversions"],
                "converting_clicks": converting.get(v["variant"], 0),
                "conversion_rate": percent(converting.get(v["variant"], 0), v["unique_clicks"]),
                "revenue": money.format_amount(v["revenue_micros"]),
                "epc": epc(v["revenue_micros"], v["unique_clicks"]),
            }
        )
    verdicts = [_verdict("click rate", "sends", rows, "unique_clicks", "sent")]
    if any(r["conversions"] for r in rows):
        verdicts.append(
            _verdict("conversion rate", "clicks", rows, "converting_clicks", "unique_clicks")
        )
    return {
        "campaign": campaign["name"],
        "variants": rows,
        "verdicts": [v.as_dict() for v in verdicts],
    }
