"""The filters listings and reports share: an account, a campaign, an offer, a list and a time
range, resolved and checked once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from trackly_cli.core import accounts, clock, lookup, store
from trackly_cli.core.errors import InvalidInput


@dataclass(frozen=True)
class Filters:
    account: dict
    campaign: dict | None = None
    offer: dict | None = None
    sending_list: dict | None = None
    since: datetime | None = None
    until: datetime | None = None
    tz: ZoneInfo | None = None

    @property
    def since_text(self) -> str | None:
        return clock.to_text(self.since) if self.since else None

    @property
    def until_text(self) -> str | None:
        return clock.to_text(self.until) if self.until else None

    def where(self, prefix: str = "", time_column: str | None = None) -> tuple[list[str], list]:
        """SQL conditions (and their parameters) for a table with account_id, campaign_id,
        offer_id and list_id columns (named with `prefix`), and the time range on
        `time_column` when one is given."""
        clauses, params = [f"{prefix}account_id = ?"], [self.account["id"]]
        for column, record in (
            ("campaign_id", self.campaign),
            ("offer_id", self.offer),
            ("list_id", self.sending_list),
        ):
            if record is not None:
                clauses.append(f"{prefix}{column} = ?")
                params.append(record["id"])
        if time_column and self.since:
            clauses.append(f"{prefix}{time_column} >= ?")
            params.append(self.since_text)
        if time_column and self.until:
            clauses.append(f"{prefix}{time_column} < ?")
            params.append(self.until_text)
        return clauses, params


def resolve(
    conn: store.Store,
    *,
    account: str | None = None,
    campaign: str | None = None,
    offer: str | None = None,
    sending_list: str | None = None,
    since: str | None = None,
    until: str | None = None,
    tz: str | None = None,
) -> Filters:
    owner = accounts.resolve(conn, account)
    zone = clock.zone(tz)
    start = clock.parse_moment(since, zone) if since else None
    end = clock.parse_moment(until, zone, end=True) if until else None
    if start and end and start >= end:
        raise InvalidInput(f"--since {since} is not before --until {until}")
    return Filters(
        account=owner,
        campaign=(  # (a retired campaign's history stays reportable)
            lookup.find(conn, "campaigns", campaign, owner["id"], retired=True)
            if campaign
            else None
        ),
        offer=lookup.find(conn, "offers", offer, owner["id"]) if offer else None,
        sending_list=lookup.find(conn, "lists", sending_list, owner["id"])
        if sending_list
        else None,
        since=start,
        until=end,
        tz=zone,
    )
