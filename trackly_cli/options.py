"""Options shared by many commands, as Annotated aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trackly_cli import completion, output
from trackly_cli.output import Format

AccountOpt = Annotated[
    str | None,
    typer.Option(
        "--account",
        "-a",
        envvar="TRACKLY_ACCOUNT",
        metavar="NAME",
        help="Account name or id (implied when only one exists).",
        show_envvar=True,
        autocompletion=completion.accounts,
    ),
]
FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to this file instead of stdout.",
        dir_okay=False,
        writable=True,
    ),
]
MetaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--meta",
        help="A meta tag for the interstitial page, KEY=VALUE (repeatable).",
        metavar="KEY=VALUE",
    ),
]

# Filters of listings and reports
CampaignOpt = Annotated[
    str | None,
    typer.Option(
        "--campaign",
        metavar="NAME",
        help="Only this campaign.",
        autocompletion=completion.campaigns,
    ),
]
OfferOpt = Annotated[
    str | None,
    typer.Option(
        "--offer", metavar="NAME", help="Only this offer.", autocompletion=completion.offers
    ),
]
ListOpt = Annotated[
    str | None,
    typer.Option(
        "--list",
        metavar="NAME",
        help="Only messages to this list.",
        autocompletion=completion.lists,
    ),
]

# Names as arguments, completed from the database
CampaignArg = Annotated[
    str,
    typer.Argument(
        metavar="CAMPAIGN", help="Campaign name or id.", autocompletion=completion.campaigns
    ),
]
AccountArg = Annotated[
    str,
    typer.Argument(metavar="NAME", help="Account name or id.", autocompletion=completion.accounts),
]
OfferArg = Annotated[
    str,
    typer.Argument(metavar="NAME", help="Offer name or id.", autocompletion=completion.offers),
]
ListArg = Annotated[
    str,
    typer.Argument(metavar="LIST", help="List name or id.", autocompletion=completion.lists),
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="From this date or time (2026-11-01, 2026-11-01T08:00, 7d)."),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Up to this date (inclusive) or time (exclusive).")
]
TzOpt = Annotated[
    str | None,
    typer.Option("--tz", help="Time zone of dates and days, e.g. Europe/Paris (default UTC)."),
]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit",
        min=1,
        max=10**9,
        metavar="N",
        help=f"At most N rows (default: {output.TABLE_ROWS} in a table, all in JSON and CSV).",
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every row, even in a table (no --limit).")]


def given_before(ctx: typer.Context) -> None:
    """A group that lists when called bare (`trackly clicks`, `trackly conversions`) with its
    options before a command (`trackly clicks --bots list`): those options would be ignored,
    so they are refused rather than dropped."""
    if ctx.invoked_subcommand is None:
        return
    given = [
        param.opts[0]
        for param in ctx.command.params
        if getattr(ctx.get_parameter_source(param.name), "name", "") == "COMMANDLINE"
    ]
    if given:
        ctx.fail(
            f"put the options after the command: trackly {ctx.info_name}"
            f" {ctx.invoked_subcommand} {' '.join(given)} …"
        )


def page_limit(limit: int | None, every: bool, fmt: Format) -> int | None:
    """How many rows a listing reads: --limit N, none with --all, else the first
    output.TABLE_ROWS of a table and all of JSON and CSV (which scripts read whole)."""
    if every and limit is not None:
        raise typer.BadParameter("--limit and --all exclude each other", param_hint="'--all'")
    if every or limit is not None:
        return limit
    return output.TABLE_ROWS if fmt is Format.table else None


ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace the file --output (or --html) names if it exists.",
        callback=output.allow_overwrite,
    ),
]

# Imports
CountryOpt = Annotated[
    str, typer.Option("--country", help="Country of numbers written without +country code.")
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Import nothing if any row is invalid.")]
