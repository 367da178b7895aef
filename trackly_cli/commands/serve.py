"""trackly serve: the redirect, conversion and pixel server."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from trackly_cli import config, output, state
from trackly_cli.core import journal as journal_files
from trackly_cli.core import linkindex, postgres, store

if TYPE_CHECKING:
    from trackly_cli.server import Tracker

DomainOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--domain", help="Answer only for this tracking domain (repeatable; default: all)."
    ),
]
HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port to listen on.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=1, max=256, help="Worker threads.")]
ProxyOpt = Annotated[
    str | None,
    typer.Option(
        "--trusted-proxy",
        metavar="IP",
        help="The reverse proxy whose X-Forwarded-For gives the client IP (waitress checks it).",
    ),
]
HotLinksOpt = Annotated[
    int,
    typer.Option(
        "--hot-links",
        min=0,
        metavar="N",
        help="Hold the newest N links in memory (about 50 bytes each; 0: none).",
    ),
]
JournalOpt = Annotated[
    Path | None,
    typer.Option(
        "--journal",
        metavar="DIR",
        file_okay=False,
        help="The click journal's folder (default: beside a SQLite database, DB.journal; for"
        " PostgreSQL, journals/HOST-PORT-DB in the app folder).",
    ),
]
# For tests and benchmarks: small segments fill (and show a full disk) after a few clicks.
SegmentOpt = Annotated[
    int,
    typer.Option("--journal-segment-kb", min=4, hidden=True, help="Journal segment size, in KiB."),
]
AccessLogOpt = Annotated[
    bool, typer.Option("--access-log", help="Log one line per request on stderr.")
]


WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        max=64,
        help="Server processes on the one port, each with its own click journal (each uses"
        " about one core; default 1).",
    ),
]


def default_journal(target) -> Path:
    """Beside a SQLite database (DB.journal); for PostgreSQL, this machine's own folder in the
    app folder, named after the database (each node keeps its journal)."""
    if not postgres.is_url(target):
        return journal_files.default_folder(target)
    parts = urlsplit(str(target))
    name = f"{parts.hostname or 'local'}-{parts.port or 5432}-{parts.path.strip('/') or 'db'}"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return Path(typer.get_app_dir(config.APP_NAME)) / "journals" / safe


def banner(tracker: Tracker, address: str, workers: int = 1) -> None:
    snapshot = tracker.snapshot
    hosts = sorted(tracker.only_hosts or snapshot.domains)
    output.info(f"[bold]Trackly[/] serving [bold]{store.display(tracker.db_path)}[/]")
    if hosts:
        output.info("  tracking domains: " + ", ".join(hosts))
    else:
        output.warn("no tracking domains yet: every link answers 404 (trackly domain add HOST)")
    hot = tracker.hot_links
    if hot.tell_when_loaded():
        output.info(
            f"  loading up to {hot.size:,} newest links into memory; until then links are read"
            " from the database"
        )
    elif len(hot):
        output.info(f"  {len(hot):,} newest links in memory ({hot.bytes / 1e6:.0f} MB)")
    writer = tracker.writer
    if workers > 1:
        output.info(f"  click journals: {writer.journal.folder} and {workers - 1} beside it")
    else:
        output.info(f"  click journal: {writer.journal.folder}")
    behind = writer.behind
    if behind:
        output.info(f"  storing {behind:,} bytes of clicks kept from the last run")
    processes = f", {workers} worker processes" if workers > 1 else ""
    output.info(f"  listening on {address}{processes}  (Ctrl-C or SIGTERM to stop)")


def serve_command(
    ctx: typer.Context,
    domain: DomainOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8080,
    threads: ThreadsOpt = 8,
    trusted_proxy: ProxyOpt = None,
    access_log: AccessLogOpt = False,
    hot_links: HotLinksOpt = linkindex.DEFAULT_SIZE,
    journal: JournalOpt = None,
    journal_segment_kb: SegmentOpt = journal_files.SEGMENT_BYTES >> 10,
    workers: WorkersOpt = 1,
) -> None:
    """Serve short links, conversions and pixels for the tracking domains."""
    from trackly_cli import server  # (the web stack: imported here, not by every command)

    target = state.state(ctx).db_path
    state.require_database(target)  # (serving an empty database made by a typo helps nobody)
    options = {
        "host": host,
        "port": port,
        "threads": threads,
        "domains": domain,
        "trusted_proxy": trusted_proxy,
        "access_log": access_log,
        "hot_links": hot_links,
        "journal": journal_files.Journal(
            journal or default_journal(target), segment_bytes=journal_segment_kb << 10
        ),
    }
    server.store_leftover_journals(target, options["journal"].folder, workers)
    if workers == 1:
        server.serve(target, announce=banner, **options)
    else:
        announce = functools.partial(banner, workers=workers)
        if server.serve_workers(target, workers, announce=announce, **options):
            raise typer.Exit(1)
    output.info("Stopped.")
