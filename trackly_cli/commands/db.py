"""trackly db: where the database is, its migrations, backups and checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import maintenance, migrate, store
from trackly_cli.options import FormatOpt, OutputOpt
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
    `trackly serve` runs)."""
    result = maintenance.backup(state.db(ctx), target, overwrite=force)
    if quiet:
        return
    output.info(
        f"Backed up {result['pages']:,} pages to {result['path']}"
        f" (schema {result['schema_version']}, {result['bytes']:,} bytes)."
    )


@app.command("check")
def check(ctx: typer.Context, fmt: FormatOpt = Format.table, out: OutputOpt = None) -> None:
    """Run SQLite's integrity check and report the schema version (read-only: it migrates
    nothing and creates no database)."""
    result = maintenance.check_file(state.state(ctx).db_path)
    output.emit_record(result, fmt, out)
    if not result["ok"]:
        raise typer.Exit(1)
