"""Everything Trackly prints goes through here: data on stdout (tables, JSON, CSV), people's
messages and errors on stderr, and fail() for every error."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import typer
from rich import box
from rich.console import Console, Group
from rich.errors import MarkupError
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from trackly_cli.core import reports
from trackly_cli.core.errors import Conflict, InvalidInput

# Off a terminal (a pipe, a file, CliRunner) tables get room rather than 80 columns, unless
# COLUMNS says how wide (see `width`), and messages for people are never wrapped, so that an error
# stays one line.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

# Listings show this many rows in a table unless --limit or --all says otherwise (see options).
TABLE_ROWS = 50


def width() -> int:
    """How wide stdout's tables may be: COLUMNS when it is set (a terminal's resize, a script's
    choice), else the terminal's width, else 200."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else 200


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def fail(message: str, code: int = 1) -> NoReturn:
    """One line (or a short list) on stderr, then exit with `code`; never a traceback."""
    stderr.print(f"[bold red]Error:[/] {escape(message)}")
    raise typer.Exit(code)


def info(message: str) -> None:
    """A message on stderr, in Rich markup: callers escape the names they put in it. Should one
    slip through unescaped and not parse ('[/]boom'), the message is printed as plain text
    rather than failing a command that has done its work."""
    try:
        stderr.print(message)
    except MarkupError:
        stderr.print(message, markup=False)


def warn(message: str) -> None:
    stderr.print(f"[yellow]Warning:[/] {escape(message)}")


def confirm(question: str, yes: bool, declined: str) -> None:
    """Ask on stderr before something that cannot be undone, unless `yes` (--yes) was given;
    a "no", or nothing to read an answer from, fails with `declined` and changes nothing."""
    if yes:
        return
    try:
        agreed = typer.confirm(question, default=False, err=True)
    except typer.Abort:  # (end of input: nobody to answer)
        agreed = False
    if not sys.stdin.isatty():
        stderr.print()  # (an answer piped in is not echoed: end the prompt's line)
    if not agreed:
        fail(f"{declined} (--yes confirms without asking)")


def open_input(path: Path) -> BinaryIO:
    """A file an import reads, or one line naming why it cannot be read."""
    try:
        return path.open("rb")
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror or e}") from e


def warn_invalid(invalid: list[tuple], count: int | None = None, shown: int = 20) -> None:
    """An import's bad rows, (line, reason) or (line, value, reason) each: the first `shown`,
    then how many more (of `count`, when fewer were kept)."""
    for line, *rest in invalid[:shown]:
        *value, reason = rest
        output = f"{value[0]!r}: {reason}" if value else reason
        warn(f"line {line}: {output} (skipped)")
    total = len(invalid) if count is None else count
    if total > shown:
        warn(f"… and {total - shown:,} more invalid rows (skipped)")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_json(data: Any) -> str:
    return json.dumps(_plain(data), indent=2, ensure_ascii=False)


def cell(value: Any, key: str = "") -> str:
    if value is None:
        return ""
    if key.endswith("_at") and isinstance(value, str) and value.endswith("Z"):
        return local_time(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(_plain(value), ensure_ascii=False) if value else ""
    return str(value)


# A cell a spreadsheet would read as a formula starts with one of these (OWASP's CSV injection
# rule); a plain number such as an E.164 phone or a negative amount stays as it is.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?$")


def csv_cell(value: Any, key: str = "") -> str:
    """A cell of a CSV written for people to open: as `cell`, with a value that a spreadsheet
    would run as a formula (a user agent of `=HYPERLINK(…)`, say) led by a single quote, which
    spreadsheets show as text. (The gateway outbox of `shorten` is not for people: its texts go
    to an SMS API as they are.)"""
    text = cell(value, key)
    # (one character alone, such as the "-" of a column without a value, is no formula)
    if len(text) > 1 and text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def local_time(text: str) -> str:
    """A stored UTC timestamp as local time on screen: '2026-11-29 14:08:12'."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return text
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _heading(key: str) -> str:
    return key.replace("_", " ")


def table(
    rows: Sequence[dict],
    columns: Sequence[str] | None = None,
    *,
    title: str | None = None,
    totals: dict | None = None,
    right: Iterable[str] = (),
) -> Table:
    columns = list(columns or (rows[0].keys() if rows else []))
    right = set(right)
    result = Table(title=title, show_footer=totals is not None, header_style="bold")
    for column in columns:
        footer = cell(totals.get(column), column) if totals else ""
        numeric = column in right or (
            rows
            and all(
                isinstance(r.get(column), (int, float, Decimal))
                and not isinstance(r.get(column), bool)
                for r in rows
            )
        )
        result.add_column(
            _heading(column), footer=footer, justify="right" if numeric else "left", overflow="fold"
        )
    for item in rows:
        result.add_row(*(escape(cell(item.get(c), c)) for c in columns))
    return result


# -- reports ----------------------------------------------------------------------------------

# The report table's short headers (the compact and --columns tables; --wide spells them out).
SHORT_HEADERS = {
    "message_id": "message",
    "delivered": "deliv",
    "undelivered": "undeliv",
    "bot_clicks": "bots",
    "bot_pct": "bot %",
    "unique_clicks": "unique",
    "click_rate": "rate",
    "conversions": "conv",
    "converting_clicks": "conv clicks",
    "conversion_rate": "conv %",
    "unattributed_conversions": "unattr conv",
    "unattributed_revenue": "unattr revenue",
}
RATES = ("bot_pct", "click_rate", "conversion_rate")
# The day report's bars: 24 characters wide, fewer when the terminal has no room for them.
SPARK_WIDTH = 24


def _report_value(column: str, value) -> str:
    if value is None:
        return "–"
    if column in RATES:
        return f"{value}%"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def report_table(
    result: reports.Report, title: str, columns: list[str], *, short: bool, width: int
) -> Table:
    """A report as a table whose numbers are never cut: each group's name (the label columns)
    folds over lines when the terminal is narrow, and the day report's bars, after the unique
    clicks, take the room left in `width` (none when there is too little)."""
    table = _report_table(result, title, columns, short=short)
    if result.by == "day":
        natural = Measurement.get(stdout, stdout.options.update_width(10_000), table).maximum
        room = width - natural - 2  # (the bars' column and its gap)
        if room >= 6:
            table = _report_table(result, title, columns, short=short, bars=min(room, SPARK_WIDTH))
    return table


def _report_table(
    result: reports.Report, title: str, columns: list[str], *, short: bool, bars: int = 0
) -> Table:
    if result.by == "message":
        labels = ["message_id", "phone"]
    else:
        labels = [result.key] if result.by != "variant" else ["campaign", "variant"]
    bars_after = next((c for c in ("unique_clicks", *reversed(labels)) if c in columns), None)
    table = Table(
        title=title,
        box=box.SIMPLE,
        show_edge=False,
        collapse_padding=True,
        show_footer=True,
        header_style="bold",
        footer_style="bold",
    )
    for index, column in enumerate(labels + columns):
        label = index < len(labels)
        if index == 0:
            footer = "Total"
        else:
            footer = "" if label else _report_value(column, result.totals.get(column))
        table.add_column(
            (SHORT_HEADERS.get(column, column) if short else column).replace("_", " "),
            footer=footer,
            justify="left" if label else "right",
            no_wrap=not label,
            overflow="fold",
        )
        if bars and column == bars_after:
            table.add_column("", footer="", justify="left", style="blue", no_wrap=True)
    drawn = reports.sparkline([r["unique_clicks"] for r in result.rows], bars) if bars else []
    for position, row in enumerate(result.rows):
        cells = []
        for column in labels + columns:
            cells.append(escape(_report_value(column, row.get(column))))
            if bars and column == bars_after:
                cells.append(drawn[position])
        table.add_row(*cells)
    return table


# Set by every command's --force (see options.ForceOpt): whether a file it writes may replace one.
_overwrite: ContextVar[bool] = ContextVar("trackly_overwrite", default=False)


def allow_overwrite(value: bool) -> bool:
    """The --force option's callback."""
    _overwrite.set(bool(value))
    return value


def writable(path: Path) -> Path:
    """A file a command is about to write: one that exists is refused without --force (an
    outbox or a report is not replaced by mistake), a folder always."""
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder: give the file to write")
    if path.exists() and not _overwrite.get():
        raise Conflict(f"{path} exists: choose another file, or add --force to replace it")
    return path


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    writable(output)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror or e}")
    info(f"Wrote {output}")


def emit(
    rows: Sequence[dict],
    fmt: Format = Format.table,
    output: Path | None = None,
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    totals: dict | None = None,
    empty: str = "Nothing to show.",
    right: Iterable[str] = (),
    total: int | None = None,
) -> None:
    """A listing or report as a Rich table, a JSON array or CSV, on stdout or into `output`;
    with `total` (the rows there are in all), a line on stderr says when these are fewer."""
    rows = [dict(r) for r in rows]
    if fmt is Format.json:
        _write(
            to_json([{k: r.get(k) for k in columns} if columns else r for r in rows]) + "\n", output
        )
    elif fmt is Format.csv:
        buffer = io.StringIO()
        names = list(columns or (rows[0].keys() if rows else []))
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for item in rows:
            writer.writerow([csv_cell(item.get(n)) for n in names])
        _write(buffer.getvalue(), output)
    elif not rows:
        if output:
            _write(empty + "\n", output)
        else:
            info(empty)
    else:
        render(table(rows, columns, title=title, totals=totals, right=right), output)
    if total is not None and total > len(rows):
        showing(len(rows), total)


def showing(shown: int, total: int) -> None:
    """The line under a listing cut to its first rows: how to see the rest."""
    info(f"showing {shown:,} of {total:,} — use --limit N or --all")


def render(renderable: Any, output: Path | None = None) -> None:
    if output is None:
        stdout.width = width()
        stdout.print(renderable)
        return
    buffer = io.StringIO()
    Console(file=buffer, width=200, soft_wrap=False, color_system=None).print(renderable)
    _write(buffer.getvalue(), output)


def emit_record(
    record: dict,
    fmt: Format = Format.table,
    output: Path | None = None,
    *,
    title: str | None = None,
) -> None:
    """One record: a two-column table, a JSON object, or CSV with a header row."""
    if fmt is Format.json:
        _write(to_json(record) + "\n", output)
    elif fmt is Format.csv:
        emit([record], fmt, output)
    else:
        render(record_table(record, title=title), output)


def emit_sections(
    record: dict,
    sections: Sequence[tuple[str, Sequence[dict]]],
    output: Path | None = None,
    *,
    title: str | None = None,
) -> None:
    """One record as a two-column table, followed by tables of its parts (a campaign's
    variants and messages), on stdout or into `output`."""
    parts: list[Any] = [record_table(record, title=title)]
    parts += [table(rows, title=heading) for heading, rows in sections if rows]
    render(Group(*parts), output)


def record_table(record: dict, *, title: str | None = None) -> Table:
    """One record as a two-column table: name, value."""
    grid = Table(title=title, show_header=False, box=None, padding=(0, 2, 0, 0))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in record.items():
        grid.add_row(_heading(key), escape(cell(value, key)))
    return grid
