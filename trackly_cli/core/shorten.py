"""Shorten: templates + link bindings (+ a list) -> one message per recipient with its own short
links, and the outbox the operator hands to the SMS gateway.

`prepare` checks everything and reports every problem at once before anything is written;
`run` writes the campaign while streaming contacts, so memory stays flat. A send to a list is
written in chunks, each its own transaction of about CHUNK_SECONDS, so that the running server's
postbacks and other commands never wait long for the write lock; the campaign stays invisible
(core.campaigns) until its last chunk commits, and an error or Ctrl-C removes what was written.
A one-off message is one transaction.

Every shorten honours the account's opt-outs (core.optouts) here, where each message is made:
a list send skips the members who opted out (counted in `Summary.skipped_optouts`), and a
one-off message to a number that opted out is refused. Such a number gets no message and no
link, so no report counts it as sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trackly_cli.core import (
    accounts,
    campaigns,
    clock,
    contacts,
    creatives,
    dialect,
    domains,
    links,
    lookup,
    optouts,
    sms,
    store,
    templates,
    validate,
)
from trackly_cli.core import ids as row_ids
from trackly_cli.core import outbox as outbox_csv
from trackly_cli.core.errors import Conflict, InvalidInput, NotFound, Problems

BATCH = 2000
# A chunk of a list send is sized to hold the write lock about this long.
CHUNK_SECONDS = 0.2
FIRST_CHUNK, MIN_CHUNK, MAX_CHUNK = 1000, 200, 20_000
MAX_VARIANTS = 26
OUTBOX_COLUMNS = outbox_csv.COLUMNS
_BINDING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$", re.S)
_URLISH = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
BUILTIN_FIELDS = ("phone",)


@dataclass
class TemplateSource:
    """A template as given: a file (saved as a creative named after it) or a creative. A text
    that is not to be saved (`save=False`: the API's one-off texts, which a platform renders per
    message) gives its message no creative, unless it starts a campaign (a campaign's variants
    name their creatives)."""

    name: str
    text: str
    creative_id: int | None = None
    save: bool = True


@dataclass(frozen=True)
class Target:
    slot: str
    offer_id: int | None
    offer_name: str | None
    url: str  # the offer's URL (macros unexpanded) or the plain destination


@dataclass
class Variant:
    label: str
    source: TemplateSource
    template: templates.Template
    targets: dict[str, Target]
    weight: int
    creative_id: int | None = None


@dataclass
class Plan:
    account: dict
    domain: dict
    variants: list[Variant]
    list_row: dict | None
    campaign: str | None
    seed: str
    recipients: int
    # An incomplete campaign of this name, left by a run that died: {id, building_pid, …}.
    leftover: dict | None = None
    # A one-off message's number (E.164), if it is for one.
    phone: str | None = None
    # A one-off message's merge fields as given (over its contact's, if the number is one).
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Summary:
    campaign: str | None
    campaign_id: int | None
    list: str | None
    domain: str
    seed: str
    recipients: int = 0
    skipped_optouts: int = 0  # list members who opted out: no message, no link
    links: int = 0
    segments_min: int = 0
    segments_max: int = 0
    encodings: Counter = field(default_factory=Counter)
    over_max_segments: int = 0
    max_segments: int = 3
    variants: list[dict] = field(default_factory=list)
    outbox: str | None = None
    message: dict | None = None  # the one-off message, with its links

    def as_dict(self) -> dict:
        result = {k: v for k, v in vars(self).items() if k != "message"}
        result["encodings"] = dict(self.encodings)
        if self.message is not None:
            result["message"] = self.message
        return result


_STORED_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")
# The outbox's rows are made by core.outbox, which `trackly campaign outbox` shares.
outbox_cell = outbox_csv.cell


def parse_split(text: str | None, count: int) -> list[int]:
    if text is None:
        return [1] * count
    try:
        weights = [int(part) for part in text.split(",")]
    except ValueError:
        raise InvalidInput(
            f"--split {text!r} is not a list of whole numbers such as 50,50"
        ) from None
    if len(weights) != count:
        raise InvalidInput(f"--split {text!r} has {len(weights)} parts for {count} templates")
    if any(w <= 0 or w > 1_000_000 for w in weights):
        raise InvalidInput(
            f"--split {text!r}: every part must be a positive weight up to 1,000,000"
        )
    return weights


def prepare(
    db: store.Store,
    *,
    account_ref: str | None,
    sources: list[TemplateSource],
    bindings: list[str],
    list_ref: str | None = None,
    campaign: str | None = None,
    split: str | None = None,
    seed: str | None = None,
    domain: str | None = None,
    keep_urls: bool = False,
    phone: str | None = None,
    country: str = "US",
    fields: dict[str, str] | None = None,
) -> Plan:
    """Check a shorten request and report every problem at once (Problems), or return the plan.

    `phone`: the number a one-off message is for (any format, `country` for one without a
    country code); one that opted out is refused (Conflict). `fields`: a one-off message's
    merge fields (the API's; they win over those of the number's contact)."""
    conn = db
    problems: list[str] = []
    account = accounts.resolve(conn, account_ref)
    if not sources:
        raise InvalidInput("give a template file (or - for stdin) or --creative NAME")
    if len(sources) > MAX_VARIANTS:
        raise InvalidInput(f"at most {MAX_VARIANTS} templates (variants A-Z)")

    try:
        sending_domain = domains.for_sending(conn, account, domain)
    except (InvalidInput, NotFound) as e:
        problems.append(e.message)
        sending_domain = None

    compiled: list[templates.Template | None] = []
    for source in sources:
        if source.creative_id is None:  # a file, saved as a creative named after it
            try:
                validate.name(source.name, "creative")
            except InvalidInput as e:
                problems.append(f"{source.name}: {e.message} (rename the file)")
        try:
            compiled.append(templates.compile_template(source.text, shorten_urls=not keep_urls))
        except InvalidInput as e:
            problems.append(f"{source.name}: {e.message}")
            compiled.append(None)

    targets, bound = _bindings(conn, account, bindings, problems)
    used_slots = {slot for t in compiled if t for slot in t.slots}
    for slot in sorted(bound - used_slots, key=_slot_order):
        problems.append(f"--link {slot}=… binds a slot no template has ({{{{{slot}}}}})")
    for source, template in zip(sources, compiled, strict=True):
        if template:
            for slot in template.slots:
                if slot not in bound:
                    problems.append(
                        f"{source.name}: {{{{{slot}}}}} is not bound: add --link {slot}=OFFER"
                        f" (an offer name or id) or --link {slot}=https://…"
                    )

    list_row = None
    recipients = 1
    if phone is not None:
        if list_ref is not None:
            problems.append("--phone is for a one-off message: leave it out with --list")
        try:
            phone = contacts.normalise_phone(phone, contacts.check_country(country))
        except InvalidInput as e:
            problems.append(f"--phone {phone!r}: {e.message}")
            phone = None
    if list_ref is not None:
        try:
            list_row = lookup.find(conn, "lists", list_ref, account["id"])
        except NotFound as e:
            problems.append(e.message)
        else:
            members = store.scalar(
                conn, "SELECT count(*) FROM list_members WHERE list_id = ?", (list_row["id"],)
            )
            recipients = members - _opted_out_members(conn, account["id"], list_row["id"])
            if not members:
                problems.append(f"list {list_row['name']!r} has no members: import contacts first")
            elif not recipients:
                problems.append(
                    f"every member of list {list_row['name']!r} ({members:,}) has opted out:"
                    " nothing to send"
                )
    if fields and list_ref is not None:
        problems.append("merge fields are given for a one-off message: leave them out with --list")
    _check_fields(conn, [t for t in compiled if t], list_row, problems, set(fields or ()))

    leftover = None
    if campaign is not None:
        try:
            campaign = validate.name(campaign, "campaign")
        except InvalidInput as e:
            problems.append(e.message)
        else:
            existing = store.row(
                conn,
                "SELECT id, list_id, building_pid, building_host, deleted FROM campaigns"
                " WHERE account_id = ? AND name_key = ?",
                (account["id"], validate.key(campaign)),
            )
            if existing is None:
                pass
            elif existing["deleted"] is not None:
                problems.append(
                    f"campaign {campaign!r} was deleted with --force and keeps its name for its"
                    " report history: choose another --campaign"
                )
            elif existing["building_pid"] is None:
                if list_ref is not None or existing["list_id"] is not None:
                    problems.append(_taken(campaign, list_ref is None))
                # (else a one-off message joins the campaign of one-off messages of that name)
            elif campaigns.is_alive(existing["building_pid"], existing["building_host"]):
                problems.append(
                    f"campaign {campaign!r} is being written by another `trackly shorten`"
                    f" (process {existing['building_pid']}): wait for it to finish"
                )
            else:
                leftover = existing  # a killed run's: the rerun replaces it
    elif list_row is not None:
        campaign = _generated_name(conn, account["id"], list_row["name"])

    try:
        weights = parse_split(split, len(sources))
    except InvalidInput as e:
        problems.append(e.message)
        weights = [1] * len(sources)
    if problems:
        raise Problems(problems)
    if phone is not None:
        _refuse_opted_out(conn, account["id"], phone)

    variants = []
    for index, (source, template) in enumerate(zip(sources, compiled, strict=True)):
        own = {slot: targets[slot] for slot in template.slots}
        own |= {slot: Target(slot, None, None, url) for slot, url in template.urls.items()}
        variants.append(Variant(chr(ord("A") + index), source, template, own, weights[index]))
    return Plan(
        account,
        sending_domain,
        variants,
        list_row,
        campaign,
        seed if seed is not None else secrets.token_hex(4),
        recipients,
        leftover,
        phone,
        dict(fields or {}),
    )


def _opted_out_members(conn: store.Store, account_id: int, list_id: int) -> int:
    """How many members of a list are on the account's opt-out list (read from the opt-outs'
    side: the list is usually far longer)."""
    return store.scalar(
        conn,
        "SELECT count(*) FROM optouts o JOIN contacts c"
        " ON c.account_id = o.account_id AND c.phone = o.phone"
        " JOIN list_members m ON m.contact_id = c.id AND m.list_id = ?"
        " WHERE o.account_id = ?",
        (list_id, account_id),
    )


def _refuse_opted_out(conn: store.Store, account_id: int, phone: str) -> None:
    found = optouts.find(conn, account_id, phone)
    if found is not None:
        why = ", ".join(p for p in (found["keyword"], found["opted_out_at"][:10]) if p)
        raise Conflict(f"{phone} has opted out ({why}): no message is made for it")


def _taken(campaign: str, one_off: bool) -> str:
    if one_off:  # (a one-off message joins only a campaign of one-off messages)
        return (
            f"campaign {campaign!r} already exists and was sent to a list: a one-off message"
            " joins only a campaign of one-off messages; choose another --campaign"
        )
    return f"campaign {campaign!r} already exists: choose another --campaign"


def _one_off_campaign(conn: store.Store, account_id: int, name: str) -> int | None:
    """The campaign of one-off messages called `name` (complete, not deleted), if any."""
    return store.scalar(
        conn,
        "SELECT id FROM campaigns WHERE account_id = ? AND name_key = ? AND list_id IS NULL"
        " AND deleted IS NULL AND building_pid IS NULL",
        (account_id, validate.key(name)),
    )


def _slot_order(slot: str) -> tuple[str, int]:
    return (slot.rstrip("0123456789"), int(slot[len(slot.rstrip("0123456789")) :] or 0))


def _bindings(
    conn: store.Store, account: dict, bindings: list[str], problems: list[str]
) -> tuple[dict[str, Target], set[str]]:
    """The targets of the --link bindings that resolve, and every slot bound at all."""
    targets: dict[str, Target] = {}
    bound: set[str] = set()
    for binding in bindings:
        match = _BINDING.match(binding)
        if not match:
            problems.append(f"--link {binding!r} is not SLOT=OFFER or SLOT=URL (e.g. link1=Summer)")
            continue
        slot, value = match.group(1).lower(), match.group(2)
        if not re.match(r"^link[1-9][0-9]*$", slot):
            problems.append(f"--link {binding!r}: slots are named link1, link2, …")
            continue
        if slot in bound:
            problems.append(f"--link {slot} is bound twice")
            continue
        bound.add(slot)
        if _URLISH.match(value):
            try:
                targets[slot] = Target(slot, None, None, validate.destination_url(value))
            except InvalidInput as e:
                problems.append(f"--link {slot}: {e.message}")
            continue
        try:
            offer = lookup.find(conn, "offers", value, account["id"])
        except NotFound as e:
            problems.append(f"--link {slot}: {e.message}")
            continue
        if offer["archived_at"] is not None:
            problems.append(
                f"--link {slot}: offer {offer['name']!r} is archived: its links still work, new"
                f" messages cannot use it (`trackly offer unarchive {offer['name']}`)"
            )
            continue
        targets[slot] = Target(slot, offer["id"], offer["name"], offer["url"])
    return targets, bound


def _check_fields(
    conn: store.Store,
    compiled: list[templates.Template],
    list_row: dict | None,
    problems: list[str],
    given: set[str] | frozenset[str] = frozenset(),
) -> None:
    """A merge field without a fallback must have a value for every recipient (a one-off
    message's may be `given`)."""
    required = sorted(
        {f.name for t in compiled for f in t.fields if f.fallback is None} - set(BUILTIN_FIELDS)
    )
    for name in required:
        if list_row is None and name in given:
            continue
        if list_row is None:
            problems.append(
                f"{{{{{name}}}}} has no contact to come from in a one-off message: give it a"
                f" fallback ({{{{{name}|…}}}}) or send to a --list"
            )
            continue
        missing = store.row(
            conn,
            "SELECT count(*) AS n, min(c.phone) AS example FROM list_members m"
            " JOIN contacts c ON c.id = m.contact_id WHERE m.list_id = ?"
            f" AND coalesce({dialect.json_key(conn, 'c.fields')}, '') = ''"
            f" AND NOT {_OPTED_OUT}",
            (list_row["id"], f'$."{name}"'),
        )
        if missing["n"]:
            problems.append(
                f"{{{{{name}}}}}: {missing['n']:,} contact(s) of list {list_row['name']!r} have no"
                f" {name} (e.g. {missing['example']}): add a fallback such as {{{{{name}|there}}}}"
            )


# Whether the contact `c` is on its account's opt-out list (a probe of the optouts index; the
# chunks of a send use a join instead, see `_Send.chunks`).
_OPTED_OUT = (
    "EXISTS (SELECT 1 FROM optouts o WHERE o.account_id = c.account_id AND o.phone = c.phone)"
)


def _generated_name(conn: store.Store, account_id: int, list_name: str) -> str:
    base = f"{list_name[:80]}-{clock.utcnow():%Y%m%d-%H%M}"
    name, n = base, 1
    while store.row(
        conn,
        "SELECT 1 FROM campaigns WHERE account_id = ? AND name_key = ?",
        (account_id, validate.key(name)),
    ):
        n += 1
        name = f"{base}-{n}"
    return name


def assign_variant(seed: str, contact_id: int, cumulative: list[float]) -> int:
    """The variant index of a contact: a keyed hash, so the same seed gives the same split."""
    digest = hashlib.blake2b(f"{seed}:{contact_id}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64
    for index, bound in enumerate(cumulative):
        if point < bound:
            return index
    return len(cumulative) - 1


def run(
    db: store.Store,
    plan: Plan,
    *,
    outbox: Path | None = None,
    max_segments: int = 3,
    progress: Callable[[int], None] | None = None,
    id_source: links.IdSource | None = None,
) -> Summary:
    """Write the messages and links of `plan` (a list send in chunks, invisible until complete);
    stream the outbox CSV, which appears only once the campaign is complete."""
    domain = plan.domain
    summary = Summary(
        campaign=plan.campaign,
        campaign_id=None,
        list=plan.list_row["name"] if plan.list_row else None,
        domain=domain["hostname"],
        seed=plan.seed,
        max_segments=max_segments,
    )
    pending = None
    handle = None
    if outbox is not None and plan.list_row is not None:
        pending = outbox_csv.PendingFile(outbox)
        handle = pending.handle
        handle.write(outbox_csv.HEADER)
    # A bigger page cache for the random-key inserts of the links (a fixed 64 MB, whatever the
    # list's size), back to what it was afterwards.
    conn = db
    sqlite = conn.dialect == dialect.SQLITE
    if sqlite:
        cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
        conn.execute("PRAGMA cache_size = -65536")
        # No checkpoint after every chunk: its random link pages would be copied into the
        # database (and synced) again each time. The WAL is checkpointed once it is large
        # (store.shrink_wal).
        autocheckpoint = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    send = _Send(plan, summary, handle, progress, id_source)
    committed = False
    try:
        if plan.leftover is not None:
            if not campaigns.claim(conn, plan.leftover):
                raise Conflict(
                    f"campaign {plan.campaign!r} is being replaced by another `trackly shorten`:"
                    " wait for it to finish"
                )
            campaigns.remove(conn, plan.leftover["id"])
        if plan.list_row is None:
            with store.write(conn):
                send.start(conn, complete=True)
                send.one_off(conn)
                send.finish(conn)
        else:
            with store.write(conn):
                send.start(conn, complete=False)
            # SQLite's foreign key checks would cost a fifth of a big send: every row's parents
            # were checked when this run began and are held in place since (the campaign row
            # refers to the account, list, domain and creatives; the contacts are read in each
            # chunk's own transaction; links refer to messages of the same batch). The offers
            # are checked again by each chunk (`_Send.chunks`). PostgreSQL keeps its checks: they
            # cannot be turned off there (but by the table's owner, for everyone at once).
            if sqlite:
                checks = conn.execute("PRAGMA foreign_keys").fetchone()[0]
                conn.execute("PRAGMA foreign_keys = OFF")
                try:
                    send.chunks(conn)
                finally:
                    conn.execute(f"PRAGMA foreign_keys = {int(checks)}")
            else:
                send.chunks(conn)
            if handle is not None:
                handle.flush()  # all rows written before the campaign is complete
            with store.write(conn):
                send.finish(conn)
        committed = True
        if pending is not None:
            # Only a complete campaign gets its outbox: a failed, interrupted or killed run
            # leaves neither.
            try:
                pending.publish()
            except OSError as e:
                raise InvalidInput(
                    f"campaign {plan.campaign!r} is saved, but its outbox could not be written"
                    f" to {outbox}: {e.strerror or e}"
                ) from e
            summary.outbox = str(outbox)
    finally:
        if pending is not None and not committed:
            pending.discard()
        if not committed and send.campaign_id is not None and plan.list_row is not None:
            _undo(conn, send)
        if sqlite:
            conn.execute(f"PRAGMA cache_size = {int(cache_size)}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint)}")
    return summary


def _undo(conn: store.Store, send: _Send) -> None:
    """Remove what a failed or interrupted list send wrote, and the creatives it made (if the
    database lets us: should it not, the campaign stays invisible, and a rerun or `trackly
    prune` removes it)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    with contextlib.suppress(*dialect.errors(conn), KeyboardInterrupt):
        campaigns.remove(conn, send.campaign_id)
        with store.write(conn):
            for creative_id in send.new_creatives:
                conn.execute(
                    "DELETE FROM creatives WHERE id = ?"
                    " AND NOT EXISTS (SELECT 1 FROM messages WHERE creative_id = ?)"
                    " AND NOT EXISTS (SELECT 1 FROM campaign_variants WHERE creative_id = ?)",
                    (creative_id, creative_id, creative_id),
                )


def _for_dialect(conn: store.Store, messages: str, short_links: str) -> tuple[str, str, str]:
    """The statements of `_Send._statements` as the database runs them: the messages' INSERT,
    the links' INSERT, and the links' INSERT that skips a link whose id is taken."""
    if conn.dialect == dialect.SQLITE:
        return messages, f"INSERT {short_links}", f"INSERT OR IGNORE {short_links}"
    # (PostgreSQL has no numbered `?N`: each is bound once, in order)
    messages, short_links = (re.sub(r"\?[0-9]+", "?", sql) for sql in (messages, short_links))
    return messages, f"INSERT {short_links}", f"INSERT {short_links} ON CONFLICT DO NOTHING"


class _Send:
    """One shorten run: its campaign, the message numbering and the counters it keeps across
    chunks."""

    def __init__(self, plan, summary, outbox, progress, id_source) -> None:
        self.plan = plan
        self.summary = summary
        self.outbox = outbox
        self.progress = progress
        self.id_source = id_source
        self.now = clock.now_text()
        self.campaign_id: int | None = None
        self.new_creatives: list[int] = []  # made by this run from template files
        self.sent: Counter = Counter()  # (variant index, offer id or 0) -> messages
        self.per_variant: Counter = Counter()
        domain = plan.domain
        self.base = f"{domain['scheme']}://{domain['hostname']}/"
        total = sum(v.weight for v in plan.variants)
        self.cumulative, running = [], 0
        for v in plan.variants:
            running += v.weight
            self.cumulative.append(running / total)
        self.labels: list[str | None] = []
        self.shapes: Counter = Counter()  # (segments, encoding) -> messages
        # The merge fields any template uses, read per recipient (phone is a column of its own).
        self.fields = sorted(
            {f.name for v in plan.variants for f in v.template.fields} - set(BUILTIN_FIELDS)
        )
        # Per variant: its format pattern, what fills each placeholder (a row column, or a link
        # as -1 - its position among the variant's slots) with the fallback, and its slots.
        self.forms = []
        for v in plan.variants:
            pattern, placeholders = v.template.formatter()
            slots = list(v.targets)
            fills = []
            for part in placeholders:
                if isinstance(part, templates.Field):
                    column = 1 if part.name == "phone" else 2 + self.fields.index(part.name)
                    fills.append((column, part.fallback or ""))
                else:
                    fills.append((-1 - slots.index(part.name), ""))
            uses_phone = any(
                isinstance(part, templates.Field) and part.name == "phone" for part in placeholders
            )
            # What each of the variant's links stores besides its ids: slot, offer, URL.
            stored = [
                (t.slot, t.offer_id, None if t.offer_id else t.url) for t in v.targets.values()
            ]
            self.forms.append((pattern, fills, stored, uses_phone))
        self.shapes_of: dict = {}
        # The offers each variant's message carries (0: a plain URL), each counted once.
        self.offers_of = [
            sorted({t.offer_id or 0 for t in v.targets.values()}) for v in plan.variants
        ]

    def start(self, conn: store.Store, *, complete: bool) -> None:
        """The creatives and the campaign row (incomplete, naming this process, unless
        `complete`)."""
        plan = self.plan
        account_id = plan.account["id"]
        list_id = plan.list_row["id"] if plan.list_row else None
        newest = store.scalar(conn, "SELECT coalesce(max(id), 0) FROM creatives")
        # A one-off message given a campaign that exists joins it (a campaign of one-off
        # messages; prepare() refused any other).
        joined = None
        if plan.campaign is not None and plan.list_row is None:
            joined = _one_off_campaign(conn, account_id, plan.campaign)
        for variant in plan.variants:
            if variant.source.creative_id is not None:
                variant.creative_id = variant.source.creative_id
            elif not variant.source.save and (plan.campaign is None or joined is not None):
                variant.creative_id = None  # (the message keeps its text; no creative)
            else:
                variant.creative_id = creatives.save_for_campaign(
                    conn, account_id, variant.source.name, variant.source.text
                )
                if variant.creative_id > newest:
                    self.new_creatives.append(variant.creative_id)
        if joined is not None:
            self.campaign_id = joined
        elif plan.campaign is not None:
            pid, host = (None, None) if complete else campaigns.builder()
            self.campaign_id = store.returned_id(
                conn.execute(
                    "INSERT INTO campaigns (account_id, name, name_key, list_id, domain_id, seed,"
                    " created_at, building_pid, building_host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (account_id, name_key) DO NOTHING RETURNING id",
                    (
                        account_id,
                        plan.campaign,
                        validate.key(plan.campaign),
                        list_id,
                        plan.domain["id"],
                        plan.seed,
                        self.now,
                        pid,
                        host,
                    ),
                )
            )
            if self.campaign_id is None and plan.list_row is None:
                # (another one-off made it since `prepare`: on PostgreSQL the insert waited
                # for that one's commit, and this one joins the campaign it made)
                self.campaign_id = _one_off_campaign(conn, account_id, plan.campaign)
                joined = self.campaign_id
            if self.campaign_id is None:  # (another run took the name since `prepare`)
                raise Conflict(_taken(plan.campaign, plan.list_row is None))
        if joined is None and plan.campaign is not None:
            conn.executemany(
                "INSERT INTO campaign_variants (campaign_id, label, creative_id, weight)"
                " VALUES (?, ?, ?, ?)",
                [(self.campaign_id, v.label, v.creative_id, v.weight) for v in plan.variants],
            )
        self.summary.campaign_id = self.campaign_id
        # Messages of a campaign carry their variant label (A, B, …); a one-off has none.
        self.labels = [v.label if self.campaign_id is not None else None for v in plan.variants]
        self.statements = _for_dialect(conn, *self._statements())

    def chunks(self, conn: store.Store) -> None:
        """The list's members, in chunks sized to CHUNK_SECONDS, each its own transaction (the
        next chunk starts after the last contact id written, so nothing is read twice)."""
        list_id = self.plan.list_row["id"]
        # The merge fields the templates use, taken out of each contact's JSON by the database.
        columns = "".join(f", {dialect.json_key(conn, 'c.fields')}" for _ in self.fields)
        paths = [f'$."{name}"' for name in self.fields]
        after, size = 0, FIRST_CHUNK
        while True:
            started = time.perf_counter()
            with store.chunk(conn):
                # Each member with whether it opted out (read in this chunk's transaction, so
                # an opt-out recorded while the send runs holds from the next chunk on).
                members = conn.execute(
                    # (a join, not EXISTS: PostgreSQL runs a subquery of the select list as
                    # a subplan for every row, a third slower than the join's index probes)
                    f"SELECT c.id, c.phone{columns}, o.id FROM list_members m"
                    " JOIN contacts c ON c.id = m.contact_id LEFT JOIN optouts o"
                    " ON o.account_id = c.account_id AND o.phone = c.phone"
                    " WHERE m.list_id = ? AND m.contact_id > ? ORDER BY m.contact_id LIMIT ?",
                    (*paths, list_id, after, size),
                ).fetchall()
                if not members:
                    return
                recipients = [row[:-1] for row in members if row[-1] is None]
                self.summary.skipped_optouts += len(members) - len(recipients)
                self.check_offers(conn)
                if recipients:
                    self.chunk(conn, recipients)
            elapsed = max(time.perf_counter() - started, 1e-3)
            after = members[-1][0]
            size = max(MIN_CHUNK, min(MAX_CHUNK, int(size * CHUNK_SECONDS / elapsed)))

    def check_offers(self, conn: store.Store) -> None:
        """The offers the links point to still exist (another command may have deleted one
        since the run began)."""
        wanted = {t.offer_id for v in self.plan.variants for t in v.targets.values()}
        wanted.discard(None)
        if not wanted:
            return
        marks = ",".join("?" * len(wanted))
        rows = conn.execute(f"SELECT id FROM offers WHERE id IN ({marks})", [*wanted])
        found = {r[0] for r in rows}
        if found != wanted:
            raise Conflict("an offer this send links to was deleted while it ran: nothing was sent")

    def one_off(self, conn: store.Store) -> None:
        """The one message of a send without a list (no merge fields): for nobody, or for
        `plan.phone` (its contact, if it is one), refused if that number has opted out."""
        phone, contact_id, values = self.plan.phone, None, {}
        if phone is not None:
            account_id = self.plan.account["id"]
            _refuse_opted_out(conn, account_id, phone)  # (again: in this transaction)
            contact = store.row(
                conn,
                "SELECT id, fields FROM contacts WHERE account_id = ? AND phone = ?",
                (account_id, phone),
            )
            if contact is not None:  # (its merge fields fill the message, as in a list send)
                contact_id, values = contact["id"], json.loads(contact["fields"])
        values = values | self.plan.fields
        fields = (values.get(name) for name in self.fields)
        self.chunk(
            conn, [(contact_id, phone, *(v if isinstance(v, str) else None for v in fields))]
        )

    def chunk(self, conn: store.Store, recipients: list[tuple]) -> None:
        """Messages and links for these recipients (contact id, phone, then the value of each
        of `self.fields`), inside the caller's transaction."""
        plan, summary = self.plan, self.summary
        variants, seed, cumulative = plan.variants, plan.seed, self.cumulative
        # All of a chunk's link ids share a random first character (links.clustered).
        source = self.id_source or links.clustered()
        # Numbered from the table at each chunk: another process may have written messages
        # since the last one (on PostgreSQL, whose writers do not wait for each other's
        # transactions, they wait for this one's to number theirs).
        dialect.lock_explicit_ids(conn, "messages")
        next_id = row_ids.next_id(conn, "messages")  # (above any removed campaign's)
        for first in range(0, len(recipients), BATCH):
            batch = recipients[first : first + BATCH]
            if len(variants) == 1:
                chosen = [0] * len(batch)
            else:
                chosen = [assign_variant(seed, row[0], cumulative) for row in batch]
            needed = sum(len(variants[index].targets) for index in chosen)
            # Drawn without asking the table first; should one be taken already (rare: the
            # insert says so), the batch is made again with ids checked against it.
            rows = self._rows(batch, chosen, next_id, links.draw(needed, source))
            if not self._insert(conn, rows, checked=False):
                rows = self._rows(batch, chosen, next_id, links.fresh_ids(conn, needed, source))
                self._insert(conn, rows, checked=True)
            message_rows, link_rows, shapes = rows
            next_id += len(message_rows)
            for index in chosen:
                self.per_variant[index] += 1
                for offer_id in self.offers_of[index]:
                    self.sent[(index, offer_id)] += 1
            self.shapes.update(shapes)
            if self.outbox is not None:
                self.outbox.write(
                    "".join(
                        outbox_csv.line(row[1], m[0], m[4], m[5], m[6])
                        for row, m in zip(batch, message_rows, strict=True)
                    )
                )
            if plan.list_row is None:
                m = message_rows[0]
                ids = [r[0] for r in link_rows]  # (one message: its links in slot order)
                summary.message = self._one_off_summary(m, ids, variants[0])
            summary.recipients += len(message_rows)
            summary.links += len(link_rows)
            if self.progress:
                self.progress(summary.recipients)
        dialect.sync_identity(conn, "messages")

    def _statements(self) -> tuple[str, str]:
        """The INSERTs of a batch. What every row of this run shares (account, campaign, list,
        domain, time: integers from the database and a timestamp of our own, checked) is
        written into the statement once, so that a million-message send binds only what
        differs per row: a quarter less work for SQLite."""
        plan = self.plan
        if not _STORED_TIME.match(self.now):
            raise ValueError(f"unexpected timestamp {self.now!r}")

        def number(value: int | None) -> str:
            return "NULL" if value is None else str(int(value))

        account, domain = number(plan.account["id"]), number(plan.domain["id"])
        campaign = number(self.campaign_id)
        list_id = number(plan.list_row["id"] if plan.list_row else None)
        now = f"'{self.now}'"
        messages = (
            "INSERT INTO messages (id, account_id, campaign_id, list_id, creative_id, contact_id,"
            " variant, domain_id, body, segments, encoding, created_at)"
            f" VALUES (?1, {account}, {campaign}, {list_id}, ?2, ?3, ?4, {domain}, ?5, ?6, ?7,"
            f" {now})"
        )
        short_links = (
            "INTO short_links (id, account_id, message_id, contact_id, domain_id, slot, offer_id,"
            f" url, created_at) VALUES (?1, {account}, ?2, ?3, {domain}, ?4, ?5, ?6, {now})"
        )
        return messages, short_links

    def _rows(
        self, batch: list[tuple], chosen: list[int], next_id: int, ids: list[str]
    ) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """The message rows, link rows and (segments, encoding) of each message of a batch, as
        `_statements` binds them. The ids are handed out in sorted order, so the links go into
        the primary key's B-tree in key order."""
        labels, base = self.labels, self.base
        forms, shapes_of = self.forms, self.shapes_of
        creative_ids = [v.creative_id for v in self.plan.variants]
        ids = iter(sorted(ids))
        message_rows, link_rows, shapes = [], [], []
        for message_id, (row, index) in enumerate(zip(batch, chosen, strict=True), next_id):
            contact_id = row[0]
            pattern, fills, targets, uses_phone = forms[index]
            short = []
            for slot, offer_id, url in targets:
                link_id = next(ids)
                short.append(base + link_id)
                link_rows.append((link_id, message_id, contact_id, slot, offer_id, url))
            args = []
            for column, fallback in fills:
                if column < 0:  # a link: its position among the variant's slots
                    args.append(short[-1 - column])
                else:
                    value = row[column]
                    args.append(value if value is not None and value != "" else fallback)
            text = pattern.format(*args)
            # Every link has the same length and alphabet, so a message's segments depend only
            # on its variant and merge fields: counted once per distinct set of them.
            key = (index, row[1:] if uses_phone else row[2:])
            shape = shapes_of.get(key)
            if shape is None:
                if len(shapes_of) >= 100_000:
                    shapes_of.clear()
                shape = shapes_of[key] = sms.segments(text)
            shapes.append(shape)
            message_rows.append(
                (message_id, creative_ids[index], contact_id, labels[index], text, *shape)
            )
        return message_rows, link_rows, shapes

    def _insert(self, conn: store.Store, rows: tuple, *, checked: bool) -> bool:
        """Insert a batch's rows; False (and nothing written) if a link id was taken."""
        message_rows, link_rows, _ = rows
        messages, insert_links, insert_new_links = self.statements
        conn.execute("SAVEPOINT shorten_batch")
        conn.executemany(messages, message_rows)
        if checked:  # (a plain INSERT: a conflict now is an error, never a lost row)
            conn.executemany(insert_links, link_rows)
        else:
            # rowcount: the rows this statement inserted (not those of any trigger)
            inserted = conn.executemany(insert_new_links, link_rows).rowcount
            if inserted != len(link_rows):
                conn.execute("ROLLBACK TO shorten_batch")
                conn.execute("RELEASE shorten_batch")
                return False
        conn.execute("RELEASE shorten_batch")
        return True

    def _one_off_summary(self, message: tuple, ids: list[str], variant: Variant) -> dict:
        phone = {"phone": self.plan.phone} if self.plan.phone is not None else {}
        return {
            "message_id": message[0],
            **phone,
            "text": message[4],
            "segments": message[5],
            "encoding": message[6],
            "links": [
                {
                    "slot": slot,
                    "id": link_id,
                    "short_url": self.base + link_id,
                    "offer": t.offer_name,
                    "offer_id": t.offer_id,
                    "destination": t.url,
                }
                for (slot, t), link_id in zip(variant.targets.items(), ids, strict=True)
            ],
        }

    def finish(self, conn: store.Store) -> None:
        """The report counters, and the campaign made complete (visible), in one transaction."""
        plan = self.plan
        list_id = plan.list_row["id"] if plan.list_row else None
        _count_sent(
            conn,
            plan,
            self.campaign_id,
            list_id,
            self.now,
            self.sent,
            self.per_variant,
            self.labels,
        )
        if self.campaign_id is not None:
            conn.execute(
                "UPDATE campaigns SET building_pid = NULL, building_host = NULL WHERE id = ?",
                (self.campaign_id,),
            )
        summary = self.summary
        if self.shapes:
            summary.segments_min = min(segments for segments, _ in self.shapes)
            summary.segments_max = max(segments for segments, _ in self.shapes)
        for (segments, encoding), count in self.shapes.items():
            summary.encodings[encoding] += count
            if segments > summary.max_segments:
                summary.over_max_segments += count
        self.summary.variants = [
            {
                "variant": v.label,
                "creative": v.source.name,
                "creative_id": v.creative_id,
                "weight": v.weight,
                "messages": self.per_variant[i],
            }
            for i, v in enumerate(plan.variants)
        ]


def _count_sent(
    conn: store.Store,
    plan: Plan,
    campaign_id: int | None,
    list_id: int | None,
    now: str,
    sent: Counter,
    per_variant: Counter,
    labels: list[str | None],
) -> None:
    """The report counters for what was just sent: messages once each (`sent`), and once per
    offer they carry (`offer_sent`)."""
    bucket = clock.bucket_of(now)

    def row(index: int, offer_id: int, messages: int, offer_messages: int) -> tuple:
        variant = plan.variants[index]
        return (
            plan.account["id"],
            bucket,
            campaign_id or 0,
            variant.creative_id or 0,
            list_id or 0,
            labels[index] or "",
            plan.domain["id"],
            offer_id,
            messages,
            offer_messages,
        )

    rows = [row(index, 0, count, 0) for index, count in per_variant.items()]
    rows += [row(index, offer_id, 0, count) for (index, offer_id), count in sent.items()]
    conn.executemany(
        "INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id, list_id,"
        " variant, domain_id, offer_id, sent, offer_sent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        f" ON CONFLICT ({dialect.rollup_conflict(conn)})"
        " DO UPDATE SET sent = report_rollups.sent + excluded.sent,"
        " offer_sent = report_rollups.offer_sent + excluded.offer_sent",
        rows,
    )
