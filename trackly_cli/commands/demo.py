"""trackly demo: a demo account on localhost, a shortened campaign, and the server."""

from __future__ import annotations

from html import escape
from typing import Annotated

import typer
from bottle import Bottle, request

from trackly_cli import output, pages, state
from trackly_cli.commands.serve import banner
from trackly_cli.core import demo, store
from trackly_cli.server import serve


def demo_routes(app: Bottle) -> None:
    """A stand-in shop for the demo offer's destination, whose thank-you page fires the
    conversion pixel."""

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
    """Build a demo account on localhost (an offer, three contacts, a shortened campaign),
    print its links, then serve them."""
    db_path = state.state(ctx).db_path
    built = demo.build(state.db(ctx, create=True), port)
    state.state(ctx).close()
    output.info(f"Demo campaign [bold]{built['campaign']}[/] in {store.display(db_path)}:")
    for item in built["messages"]:
        output.info(f"  {item['phone']}: {item['text']}")
        typer.echo(item["link"])
    output.info(
        f"Try: curl -i {built['messages'][0]['link']}\n"
        "(the demo list counts every click, even curl's: real lists flag bots by default)"
    )
    serve(db_path, host=host, port=port, routes=demo_routes, announce=banner)
    output.info("Stopped.")
