"""trackly dashboard: the operator's app in the browser (its own server, never a tracking
domain's)."""

from __future__ import annotations

from typing import Annotated

import typer

from trackly_cli import config, output, state
from trackly_cli.core import store, users
from trackly_cli.core.errors import InvalidInput

HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port to listen on.")]
ProxyOpt = Annotated[
    str | None,
    typer.Option(
        "--trusted-proxy",
        metavar="IP",
        help="The reverse proxy whose X-Forwarded-For / -Proto waitress believes (https"
        " cookies are Secure behind it).",
    ),
]
DemoOpt = Annotated[
    bool, typer.Option("--demo", help="Show the database of `trackly demo` (its demo.db).")
]


def dashboard_command(
    ctx: typer.Context,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8081,
    trusted_proxy: ProxyOpt = None,
    threads: Annotated[int, typer.Option("--threads", min=1, max=64, help="Threads.")] = 4,
    demo: DemoOpt = False,
) -> None:
    """Serve the dashboard (campaigns, raw / unique / bot clicks, live clicks and revenue) and
    the JSON API under /api/v1 (keys: trackly apikey create)."""
    # (the web stack is imported here, not by every command's start)
    from trackly_cli.dashboard import app as dashboard_app
    from trackly_cli.housekeeping import WebhookSender

    current = state.state(ctx)
    if demo and not current.chosen:
        current.db_path = config.demo_db_path()
    target = current.db_path
    db = state.db(ctx)  # (an existing database, migrated)
    anyone = users.exist(db)
    current.close()
    loopback = dashboard_app.is_loopback_address(host)
    if not anyone and (not loopback or trusted_proxy):
        raise InvalidInput(
            f"no dashboard user yet, and --host {host}"
            + (" behind --trusted-proxy" if loopback else "")
            + " is reachable from other machines: run `trackly user add NAME --admin` first"
        )
    app = dashboard_app.create_app(target, open_local=not trusted_proxy)

    def announce(address: str) -> None:
        output.info(f"[bold]Trackly dashboard[/] on [bold]{store.display(target)}[/]")
        if not anyone:
            output.warn(
                "no dashboard user yet: open without a login to this machine only"
                " (trackly user add NAME --admin)"
            )
        output.info(f"  open {address}/  (Ctrl-C or SIGTERM to stop)")

    # (webhook events go out from the operator's app too: from whichever runs, or both)
    with WebhookSender(store.location(target)):
        dashboard_app.serve(
            app,
            host=host,
            port=port,
            threads=threads,
            trusted_proxy=trusted_proxy,
            announce=announce,
        )
    output.info("Stopped.")
