"""trackly db: where the database is, its migrations, backups and checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import maintenance, migrate, store
from trackly_cli.core.postgres import is_url
from trackly_cli.options import ForceOpt, FormatOpt, OutputOpt
from trackly_cli.output import Format

app = typer.Typer(
    help="The database: its path, migrations, backups and checks.", no_args_is_help=True
)


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the database path or URL, its password hidden (--db, else TRACKLY_DB, else the
    app folder)."""
    typer.echo(store.display(state.state(ctx).db_path))


@app.command("migrate")
def migrate_command(
    ctx: typer.Context,
    list_only: Annotated[bool, typer.Option("--list", help="List migrations; apply none.")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Apply pending migrations (they also apply themselves), or list them with --list."""
    conn = store.connect(state.state(ctx).db_path)
    try:
        if not list_only:
            applied = migrate.apply(conn)
            output.info(
                f"Applied {len(applied)} migration(s)."
                if applied
                else "The database is up to date."
            )
        rows = [vars(s) for s in migrate.status(conn)]
    finally:
        conn.close()
    if list_only or fmt is not Format.table:
        output.emit(rows, fmt)


@app.command("backup")
def backup(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="Where to write the copy.", dir_okay=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Say nothing on success.")] = False,
) -> None:
    """Write a consistent copy of the database with SQLite's online backup (safe while
    `trackly serve` runs). A PostgreSQL database is copied with pg_dump."""
    where = state.state(ctx).db_path
    if is_url(where):
        raise maintenance.refuse_postgres_backup(str(where), target)
    result = maintenance.backup(state.db(ctx), target, overwrite=force)
    if quiet:
        return
    output.info(
        f"Backed up {result['pages']:,} pages to {result['path']}"
        f" (schema {result['schema_version']}, {result['bytes']:,} bytes)."
    )


@app.command("check")
def check(
    ctx: typer.Context,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Run SQLite's integrity check and report the schema version (read-only: it migrates
    nothing and creates no database). On PostgreSQL: its checksum failures, the schema and
    what waits."""
    where = state.state(ctx).db_path
    result = maintenance.check_url(where) if is_url(where) else maintenance.check_file(where)
    output.emit_record(result, fmt, out)
    if not result["ok"]:
        raise typer.Exit(1)


@app.command("copy")
def copy_command(
    source: Annotated[
        str, typer.Argument(metavar="SRC", help="The database to copy (path or URL).")
    ],
    target: Annotated[
        str,
        typer.Argument(metavar="DST", help="An empty database to copy into (path or URL)."),
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Say nothing on success.")] = False,
) -> None:
    """Copy a whole Trackly database into another store (SQLite to PostgreSQL and back):
    every row, the report counters as they are, the settings. The target must be empty; it is
    created and migrated if needed, and written in one transaction."""
    from trackly_cli.core import dbcopy
    from trackly_cli.core.errors import InvalidInput

    if not is_url(source) and not Path(source).is_file():
        raise InvalidInput(f"no database at {source}")
    src = store.open_db(store.location(source))
    try:
        dst = store.open_db(store.location(target))
        try:
            result = dbcopy.copy(src, dst)
        finally:
            dst.close()
    finally:
        src.close()
    if not quiet:
        output.info(
            f"Copied {result.total:,} rows from {result.source} to {result.target}"
            f" ({result.rows['messages']:,} messages, {result.rows['short_links']:,} links,"
            f" {result.rows['message_short_link_clicks']:,} clicks,"
            f" {result.rows['conversions']:,} conversions)."
        )
