"""trackly serve: the redirect, conversion and pixel server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import journal as journal_files
from trackly_cli.core import linkindex
from trackly_cli.server import Tracker, serve

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
        help="The click journal's folder (default: beside the database, DB.journal).",
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


def banner(tracker: Tracker, address: str) -> None:
    snapshot = tracker.snapshot
    hosts = sorted(tracker.only_hosts or snapshot.domains)
    output.info(f"[bold]Trackly[/] serving [bold]{tracker.db_path}[/]")
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
    output.info(f"  click journal: {writer.journal.folder}")
    behind = writer.behind
    if behind:
        output.info(f"  storing {behind:,} bytes of clicks kept from the last run")
    output.info(f"  listening on {address}  (Ctrl-C or SIGTERM to stop)")


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
) -> None:
    """Serve short links, conversions and pixels for the tracking domains."""
    serve(
        state.state(ctx).db_path,
        host=host,
        port=port,
        threads=threads,
        domains=domain,
        trusted_proxy=trusted_proxy,
        access_log=access_log,
        hot_links=hot_links,
        journal=journal_files.Journal(
            journal or journal_files.default_folder(state.state(ctx).db_path),
            segment_bytes=journal_segment_kb << 10,
        ),
        announce=banner,
    )
    output.info("Stopped.")
