"""Time in one place: UTC in the database, in a fixed-width text form that sorts as it should."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trackly_cli.core.errors import InvalidInput

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    """'2026-11-29T13:08:12.123456Z': the form every *_at column holds."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not stored")
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def now_text() -> str:
    return to_text(utcnow())


_second_text: tuple[int, str] = (-1, "")


def timestamp_text(seconds: float) -> str:
    """An epoch timestamp (time.time()) in the stored form. The server stamps every click
    with it, so the text of the current second is made once."""
    global _second_text
    whole = int(seconds)
    second, text = _second_text
    if second != whole:
        text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_text = (whole, text)
    return f"{text}.{int((seconds - whole) * 1_000_000):06d}Z"


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)  # reads the trailing Z as UTC (and is fast)


def days_ago_text(days: float, now: datetime | None = None) -> str:
    return to_text((now or utcnow()) - timedelta(days=days))


def bucket_of(text: str) -> str:
    """The 15-minute report bucket of a stored timestamp: '2026-11-29T13:08:…Z' ->
    '2026-11-29T13:00:00Z'. The rollup triggers in the schema compute the same."""
    minute = int(text[14:16]) // 15 * 15
    return f"{text[:14]}{minute:02d}:00Z"


_RELATIVE = re.compile(r"^(\d{1,5})([dhm])$")


def parse_moment(
    text: str, tz: ZoneInfo | None = None, *, end: bool = False, now: datetime | None = None
) -> datetime:
    """A moment typed by a user: '2026-11-29' (the start of that day, or with `end` the start
    of the next), '2026-11-29T14:30', '2026-11-29 14:30:00', with or without an offset or Z,
    or a relative '7d', '24h', '30m' (ago, from the quarter hour: reports count in 15-minute
    steps). Naive times are in `tz` (UTC by default)."""
    value = text.strip()
    zone = tz or UTC
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        delta = {
            "d": timedelta(days=amount),
            "h": timedelta(hours=amount),
            "m": timedelta(minutes=amount),
        }[unit]
        moment = (now or utcnow()) - delta
        return moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=zone)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a date or time: use 2026-11-29, 2026-11-29T14:30 or 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def zone(name: str | None) -> ZoneInfo | None:
    if not name or name.upper() == "UTC":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"--tz {name!r} is not a time zone such as Europe/Paris") from None
