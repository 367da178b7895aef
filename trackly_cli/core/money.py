"""Exact money: amounts are parsed from decimal text into integer micros and never touch a float."""

from __future__ import annotations

import re
from decimal import Decimal

from trackly_cli.core.errors import InvalidInput

MICROS = 1_000_000
MAX_PLACES = 4
MAX_AMOUNT = Decimal(10_000_000)  # per conversion or payout: anything larger is a mistake
_AMOUNT = re.compile(r"^[+-]?(\d{0,12})(?:\.(\d{0,12}))?$")


def parse_amount(text: str, *, name: str = "amount", allow_negative: bool = False) -> int:
    """'24.99' -> 24_990_000 micros. Rejects anything that is not a plain finite decimal with at
    most four places and a sane magnitude: 'abc', 'NaN', 'inf', '1e400', '0.12345', '1e3'."""
    text = text.strip()
    # (re's \d and Decimal take any script's digits: '٤٢' would be 42)
    match = _AMOUNT.match(text) if text.isascii() else None
    if not match or not (match.group(1) or match.group(2)):  # '.5' and '5.' are fine, '.' not
        raise InvalidInput(f"{name} {_shorten(text)!r} is not a decimal amount such as 24.99")
    places = match.group(2) or ""
    if len(places) > MAX_PLACES:
        raise InvalidInput(f"{name} {text!r} has more than {MAX_PLACES} decimal places")
    value = Decimal(text)
    if value < 0 and not allow_negative:
        raise InvalidInput(f"{name} {text!r} is negative")
    if abs(value) > MAX_AMOUNT:
        raise InvalidInput(f"{name} {text!r} is larger than {MAX_AMOUNT:,}")
    return int(value * MICROS)


def to_decimal(micros: int) -> Decimal:
    return Decimal(micros) / MICROS


def format_amount(micros: int | None) -> str | None:
    """24_990_000 -> '24.99'; always two places, more only when the amount has them."""
    if micros is None:
        return None
    value = to_decimal(micros)
    text = f"{value:.4f}"
    whole, frac = text.split(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
