"""Time in one place: UTC in the database, in a fixed-width text form that sorts as it should."""

from datetime import UTC, datetime, timedelta

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


def timestamp_text(seconds: float) -> str:
    """An epoch timestamp (time.time()) in the stored form."""
    return datetime.fromtimestamp(seconds, UTC).strftime(TIMESTAMP_FORMAT)


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)  # reads the trailing Z as UTC (and is fast)


def days_ago_text(days: float, now: datetime | None = None) -> str:
    return to_text((now or utcnow()) - timedelta(days=days))


def bucket_of(text: str) -> str:
    """The 15-minute report bucket of a stored timestamp: '2026-11-29T13:08:…Z' ->
    '2026-11-29T13:00:00Z'. The rollup triggers in the schema compute the same."""
    minute = int(text[14:16]) // 15 * 15
    return f"{text[:14]}{minute:02d}:00Z"
