"""Deleting lists, offers, creatives and accounts, and taking contacts off a list.

The rule: something nothing refers to is deleted outright; something that history (messages,
links, clicks, conversions) refers to is refused, with the counts and what to do instead, so
that no delete breaks a live link or a report row silently:

- a list that campaigns were sent to: `--force` deletes it and its memberships; the messages
  and campaigns keep their report rows (under "(deleted list N)"); their later clicks,
  conversions and receipts count under "(no list)", and are judged with the default bot filter;
- an offer with links: its links redirect to its URL and carry its postbacks, so it is never
  deleted alone (`offer archive` takes it out of listings and new messages instead);
- a creative that campaigns used: their A/B variants name it, so it stays;
- an account: `--force` deletes every row of it, in every table, in one transaction.

Every delete is one transaction: a refusal changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from trackly_cli.core import accounts, contacts, dialect, ids, lookup, store
from trackly_cli.core.errors import Conflict, InvalidInput


def _plural(count: int, what: str) -> str:
    return f"{count:,} {what}{'' if count == 1 else 's'}"


# ---- lists


@dataclass
class Removed:
    list_name: str
    removed: int = 0
    not_members: int = 0

    def as_dict(self) -> dict:
        return {"list": self.list_name, "removed": self.removed, "not_members": self.not_members}


def remove_contacts(
    db: store.Store,
    account_ref: str | None,
    list_ref: str,
    phones: list[str],
    country: str = "US",
) -> Removed:
    """Take these numbers off a list (the contacts stay). Every number is checked first: one
    that is not a phone number changes nothing."""
    country = contacts.check_country(country)
    if not phones:
        raise InvalidInput("no phone numbers given")
    problems, numbers = [], []
    for raw in phones:
        try:
            numbers.append(contacts.normalise_phone(raw, country))
        except InvalidInput as e:
            problems.append(f"{raw!r}: {e.message}")
    if problems:
        raise InvalidInput(f"{problems[0]} (nothing was removed)")
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        target = lookup.find(conn, "lists", list_ref, account["id"])
        result = Removed(target["name"])
        for phone in dict.fromkeys(numbers):
            gone = conn.execute(
                "DELETE FROM list_members WHERE list_id = ? AND contact_id ="
                " (SELECT id FROM contacts WHERE account_id = ? AND phone = ?)",
                (target["id"], account["id"], phone),
            ).rowcount
            result.removed += gone
            result.not_members += not gone
    return result


def delete_list(db: store.Store, account_ref: str | None, ref: str, force: bool = False) -> dict:
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        found = lookup.find(conn, "lists", ref, account["id"])
        campaigns = store.scalar(
            conn, "SELECT count(*) FROM campaigns WHERE list_id = ?", (found["id"],)
        )
        messages = store.scalar(
            conn, "SELECT count(*) FROM messages WHERE list_id = ?", (found["id"],)
        )
        if (campaigns or messages) and not force:
            raise Conflict(
                f"list {found['name']!r} was sent {_plural(campaigns, 'campaign')}"
                f" ({_plural(messages, 'message')}): it stays, so that their reports keep its"
                " name and their links its bot filter. --force deletes it anyway (its report"
                f' rows show as "(deleted list {found["id"]})", later clicks count under'
                ' "(no list)")'
            )
        conn.execute("UPDATE campaigns SET list_id = NULL WHERE list_id = ?", (found["id"],))
        conn.execute("UPDATE messages SET list_id = NULL WHERE list_id = ?", (found["id"],))
        members = conn.execute(
            "DELETE FROM list_members WHERE list_id = ?", (found["id"],)
        ).rowcount
        conn.execute("DELETE FROM lists WHERE id = ?", (found["id"],))
        ids.raise_floor(conn, "lists", found["id"])  # (its report rows keep its id)
    return {
        "list": found["name"],
        "id": found["id"],
        "members": members,
        "campaigns": campaigns,
        "messages": messages,
    }


# ---- offers and creatives


def delete_offer(db: store.Store, account_ref: str | None, ref: str) -> dict:
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        found = lookup.find(conn, "offers", ref, account["id"])
        links = store.scalar(
            conn, "SELECT count(*) FROM short_links WHERE offer_id = ?", (found["id"],)
        )
        conversions = store.scalar(
            conn, "SELECT count(*) FROM conversions WHERE offer_id = ?", (found["id"],)
        )
        waiting = store.scalar(
            conn, "SELECT count(*) FROM pending_reversals WHERE offer_id = ?", (found["id"],)
        )
        if links or conversions or waiting:
            clicks = store.scalar(
                conn,
                "SELECT coalesce(sum(clicks), 0) FROM report_rollups"
                " WHERE account_id = ? AND offer_id = ?",
                (account["id"], found["id"]),
            )
            raise Conflict(
                f"offer {found['name']!r} has {_plural(links, 'link')},"
                f" {_plural(clicks, 'click')} and {_plural(conversions + waiting, 'conversion')}:"
                " deleting it would break its live links (they redirect to its URL and take its"
                " postbacks) and its report rows, so it stays: `trackly offer archive"
                f" {found['name']}` takes it out of `offer list` and new messages instead"
            )
        conn.execute("DELETE FROM offers WHERE id = ?", (found["id"],))
    return {"offer": found["name"], "id": found["id"]}


def delete_creative(db: store.Store, account_ref: str | None, ref: str) -> dict:
    with store.write(db) as conn:
        account = accounts.resolve(conn, account_ref)
        found = lookup.find(conn, "creatives", ref, account["id"])
        campaigns = store.scalar(
            conn,
            "SELECT count(DISTINCT campaign_id) FROM campaign_variants WHERE creative_id = ?",
            (found["id"],),
        )
        messages = store.scalar(
            conn, "SELECT count(*) FROM messages WHERE creative_id = ?", (found["id"],)
        )
        if campaigns or messages:
            raise Conflict(
                f"creative {found['name']!r} was used by {_plural(campaigns, 'campaign')}"
                f" ({_plural(messages, 'message')}): their A/B variants and reports name it,"
                " so it stays; add a new creative for new campaigns"
            )
        conn.execute("DELETE FROM creatives WHERE id = ?", (found["id"],))
    return {"creative": found["name"], "id": found["id"]}


# ---- accounts

# The account's tables, in an order that foreign keys allow: each is emptied before the tables
# it refers to. Tables added later that carry an account_id are emptied first (see
# `delete_account`).
_BY_ACCOUNT = (
    "conversions",
    "pending_reversals",
    "message_clicks",
    "message_short_link_clicks",
    "short_links",
)
_CONFIGURATION = ("contacts", "lists", "creatives", "offers", "domains", "report_rollups")


# What a refusal to delete an account counts: (what it is called, its table)
_HISTORY = (
    ("messages", "messages"),
    ("clicks", "message_short_link_clicks"),
    ("conversions", "conversions"),
    ("contacts", "contacts"),
    ("optouts", "optouts"),
)


def account_contents(conn: store.Store, account_id: int) -> dict[str, int]:
    """How many messages, clicks, conversions and contacts an account has."""
    return {
        what: store.scalar(
            conn, f"SELECT count(*) FROM {table} WHERE account_id = ?", (account_id,)
        )
        for what, table in _HISTORY
    }


def delete_account(db: store.Store, ref: str, force: bool = False) -> dict:
    """Delete an account: outright when nothing was sent and no contact is kept (its domains,
    offers, lists and creatives go with it); with `force`, everything of it."""
    sqlite = db.dialect == dialect.SQLITE
    if sqlite:  # (contacts go too: their bytes are zeroed, as `contacts erase` does)
        db.execute("PRAGMA secure_delete = ON")
    try:
        with store.write(db) as conn:
            account = lookup.find(conn, "accounts", ref)
            counts = account_contents(conn, account["id"])
            if any(counts.values()) and not force:
                raise Conflict(
                    f"account {account['name']!r} has {_plural(counts['messages'], 'message')},"
                    f" {_plural(counts['clicks'], 'click')},"
                    f" {_plural(counts['conversions'], 'conversion')}"
                    + (f", {_plural(counts['optouts'], 'opt-out')}" if counts["optouts"] else "")
                    + f" and {_plural(counts['contacts'], 'contact')}: --force deletes all of it,"
                    " its live links and reports too (back it up first: `trackly db backup`)"
                )
            deleted = _delete_everything(conn, account["id"])
    finally:
        if sqlite:
            db.execute("PRAGMA secure_delete = OFF")
    if sqlite:
        store.checkpoint_wal(db, "TRUNCATE", 2000)
    return {"account": account["name"], "id": account["id"], "rows": deleted} | counts


def _delete_everything(conn: store.Store, account_id: int) -> int:
    known = {*_BY_ACCOUNT, *_CONFIGURATION, "messages", "campaigns", "accounts"}
    deleted = 0

    def run(sql: str) -> None:
        nonlocal deleted
        deleted += max(conn.execute(sql, (account_id,)).rowcount, 0)

    # The ids of its messages, lists, hooks and keys are never given again: a delivery report, a
    # postback or a script naming one must not land on another account's row.
    for table in ids.FLOORED:
        ids.raise_floor(
            conn,
            table,
            store.scalar(conn, f"SELECT max(id) FROM {table} WHERE account_id = ?", (account_id,)),
        )
    # Tables this module does not know (added after it) first: theirs refer to the ones above.
    for table in dialect.tables_with_column(conn, "account_id"):
        if table not in known:
            run(f"DELETE FROM {table} WHERE account_id = ?")
    for table in _BY_ACCOUNT:
        run(f"DELETE FROM {table} WHERE account_id = ?")
    run(
        "DELETE FROM message_rollups WHERE message_id IN"
        " (SELECT id FROM messages WHERE account_id = ?)"
    )
    run("DELETE FROM messages WHERE account_id = ?")
    run(
        "DELETE FROM campaign_variants WHERE campaign_id IN"
        " (SELECT id FROM campaigns WHERE account_id = ?)"
    )
    run("DELETE FROM campaigns WHERE account_id = ?")
    run("DELETE FROM list_members WHERE list_id IN (SELECT id FROM lists WHERE account_id = ?)")
    for table in _CONFIGURATION:
        run(f"DELETE FROM {table} WHERE account_id = ?")
    run("DELETE FROM accounts WHERE id = ?")
    return deleted
