"""trackly shorten: the main job — templates to per-recipient tracked links and an outbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trackly_cli import completion, output, state
from trackly_cli.commands.creative import read_template
from trackly_cli.core import accounts, lookup, shorten
from trackly_cli.options import AccountOpt, CountryOpt, ForceOpt, FormatOpt
from trackly_cli.output import Format


def _sources(
    ctx: typer.Context, files: list[Path], creative_names: list[str], account: str | None
) -> list[shorten.TemplateSource]:
    sources = []
    for path in files:
        name = "stdin" if str(path) == "-" else path.stem
        sources.append(shorten.TemplateSource(name=name, text=read_template(path)))
    if creative_names:
        db = state.db(ctx)
        owner = accounts.resolve(db, account)
        for ref in creative_names:
            found = lookup.find(db, "creatives", ref, owner["id"])
            sources.append(shorten.TemplateSource(found["name"], found["body"], found["id"]))
    return sources


def shorten_command(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Template file(s), UTF-8, or - for stdin; several make an A/B test.",
            allow_dash=True,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    link: Annotated[
        list[str] | None,
        typer.Option(
            "--link",
            "-l",
            metavar="SLOT=OFFER|URL",
            help="Bind {{linkN}} to an offer (name or id) or a URL (repeatable).",
        ),
    ] = None,
    list_name: Annotated[
        str | None,
        typer.Option(
            "--list",
            metavar="NAME",
            help="Send to this list: one message per member.",
            autocompletion=completion.lists,
        ),
    ] = None,
    campaign: Annotated[
        str | None,
        typer.Option("--campaign", help="Campaign name (default: the list's name and the time)."),
    ] = None,
    creative: Annotated[
        list[str] | None,
        typer.Option("--creative", help="Use a saved creative as a template (repeatable)."),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option("--split", help="Weights of the templates, e.g. 50,50 (default: equal)."),
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option("--seed", help="Reproduce an A/B assignment (default: random, printed)."),
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option(
            "--domain", help="Tracking domain of the account (default: its default domain)."
        ),
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            help="Outbox CSV for the SMS gateway (default: <campaign>.csv).",
        ),
    ] = None,
    keep_urls: Annotated[
        bool, typer.Option("--keep-urls", help="Leave URLs written in the text as they are.")
    ] = False,
    phone: Annotated[
        str | None,
        typer.Option(
            "--phone",
            help="The number a one-off message is for (refused if it opted out).",
        ),
    ] = None,
    country: CountryOpt = "US",
    max_segments: Annotated[
        int,
        typer.Option("--max-segments", min=1, help="Warn when a message needs more SMS segments."),
    ] = 3,
    account: AccountOpt = None,
    fmt: FormatOpt = Format.table,
    force: ForceOpt = False,
) -> None:
    """Turn a message template into tracked short links: one message per list member
    (with --list) and an outbox CSV, or a single one-off message."""
    db = state.db(ctx)
    plan = shorten.prepare(
        db,
        account_ref=account,
        sources=_sources(ctx, files or [], creative or [], account),
        bindings=link or [],
        list_ref=list_name,
        campaign=campaign,
        split=split,
        seed=seed,
        domain=domain,
        keep_urls=keep_urls,
        phone=phone,
        country=country,
    )
    if plan.list_row is None:
        summary = shorten.run(db, plan, max_segments=max_segments)
        _one_off(summary, fmt)
        return
    target = outbox or Path(re.sub(r"[^A-Za-z0-9._-]+", "_", plan.campaign) + ".csv")
    output.writable(target)  # (another campaign's outbox is not replaced by mistake)
    with Progress(
        TextColumn("Shortening"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.stderr,
        transient=True,
        disable=plan.recipients < 5000,
    ) as bar:
        task = bar.add_task("shorten", total=plan.recipients)
        summary = shorten.run(
            db,
            plan,
            outbox=target,
            max_segments=max_segments,
            progress=lambda done: bar.update(task, completed=done),
        )
    if summary.over_max_segments:
        output.warn(
            f"{summary.over_max_segments:,} message(s) need more than {max_segments}"
            f" SMS segments (up to {summary.segments_max}): shorten the text or the"
            " merge fields"
        )
    if fmt is Format.table:
        _campaign_table(summary)
    else:
        output.emit_record(summary.as_dict(), fmt)


def _one_off(summary: shorten.Summary, fmt: Format) -> None:
    message = summary.message
    if fmt is Format.table:
        typer.echo(message["text"])
        if summary.over_max_segments:
            output.warn(f"the message needs {message['segments']} SMS segments")
        output.info(
            f"message {message['message_id']}, {message['segments']} segment(s),"
            f" {message['encoding']}"
        )
    else:
        output.emit_record(message, fmt)


def _campaign_table(summary: shorten.Summary) -> None:
    grid = Table(show_header=False, box=None, padding=(0, 2, 0, 0), title="Shortened")
    grid.add_column(style="bold")
    grid.add_column()
    encodings = ", ".join(f"{n:,} {kind}" for kind, n in sorted(summary.encodings.items()))
    rows = [
        ("campaign", summary.campaign),
        ("list", summary.list),
        ("recipients", f"{summary.recipients:,}"),
    ]
    if summary.skipped_optouts:
        rows.append(("skipped", f"{summary.skipped_optouts:,} opted-out (no message)"))
    rows += [
        ("links", f"{summary.links:,} on {summary.domain}"),
        ("segments", f"{summary.segments_min}–{summary.segments_max} per message ({encodings})"),
        ("outbox", summary.outbox),
    ]
    if len(summary.variants) > 1:
        rows.append(("seed", summary.seed))
        for v in summary.variants:
            rows.append(
                (
                    f"variant {v['variant']}",
                    f"{v['creative']}: {v['messages']:,} messages (weight {v['weight']})",
                )
            )
    for key, value in rows:
        grid.add_row(key, escape(str(value)))  # (names are text, not Rich markup)
    output.render(grid)
