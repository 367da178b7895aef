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


def from_text(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def days_ago_text(days: float, now: datetime | None = None) -> str:
    return to_text((now or utcnow()) - timedelta(days=days))
