"""trackly demo: a demo account on localhost, a shortened campaign, and the server."""

from __future__ import annotations

from html import escape
from typing import Annotated

import typer

from trackly_cli import config, output, pages, state
from trackly_cli.commands.serve import banner
from trackly_cli.core import demo, postgres, store


def demo_routes(app) -> None:
    """A stand-in shop for the demo offer's destination (routes added to the Bottle app `app`),
    whose thank-you page fires the conversion pixel."""
    from bottle import request

    @app.get("/demo/shop")
    def shop():
        link = escape(request.query.get("link", "")[:7])
        return pages.message("Demo shop", f"You came from link {link}.").replace(
            "</main>",
            f'<a class="cta" href="/demo/thanks?link={link}">Buy for 19.99</a></main>',
        )

    @app.get("/demo/thanks")
    def thanks():
        link = escape(request.query.get("link", "")[:7])
        pixel = (
            f'<img src="/pixel/{link}.gif?event=sale&amp;revenue=19.99" width="1" height="1"'
            ' alt="">'
        )
        return pages.message("Thank you!", "The sale was recorded by the pixel.").replace(
            "</main>", pixel + "</main>"
        )


def demo_command(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", "-p", min=1, max=65535, help="Port to serve on.")
    ] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Build a demo account on localhost (an offer, three contacts, a shortened campaign) in
    a database of its own (the app folder's demo.db, unless --db names one), print its links,
    then serve them."""
    current = state.state(ctx)
    if not current.chosen:
        current.db_path = config.demo_db_path()
    db_path = current.db_path
    built = demo.build(state.db(ctx, create=True), port)
    current.close()
    shown = store.display(db_path)
    output.info(f"Demo campaign [bold]{built['campaign']}[/] in {shown}:")
    for item in built["messages"]:
        # (the texts name the tracking domain as a phone would see it; here it has a port)
        text = item["text"].replace(f"http://{demo.HOST}/", f"http://{demo.HOST}:{port}/")
        output.info(f"  {item['phone']}: {text}")
        typer.echo(item["link"])
    if not postgres.is_url(db_path):
        output.info(f"Its clicks and sales: trackly --db {shown} report")
    output.info(
        f"Try: curl -i {built['messages'][0]['link']}\n"
        "(the demo list counts every click, even curl's: real lists flag bots by default)"
    )
    first = built["messages"][0]["link"]

    def announce(tracker, address: str) -> None:
        banner(tracker, address)
        # (the server answers for its tracking domains: the address it listens on is not one)
        output.info(f"  open {first} (the demo's tracking domain is {demo.HOST})")

    from trackly_cli.server import serve  # (the web stack: imported here, not at every start)

    serve(db_path, host=host, port=port, routes=demo_routes, announce=announce)
    output.info("Stopped.")
