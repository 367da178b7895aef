"""Options shared by many commands, as Annotated aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trackly_cli.output import Format

AccountOpt = Annotated[
    str | None,
    typer.Option(
        "--account",
        "-a",
        envvar="TRACKLY_ACCOUNT",
        help="Account name or id (implied when only one exists).",
        show_envvar=True,
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
