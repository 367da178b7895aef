"""trackly webhook: signed HTTP posts of clicks and conversions to a URL of the operator's."""

from __future__ import annotations

from typing import Annotated

import typer

from trackly_cli import output, state
from trackly_cli.core import delivery, webhooks
from trackly_cli.options import AccountOpt, ForceOpt, FormatOpt, OutputOpt
from trackly_cli.output import Format

app = typer.Typer(
    help="Webhooks: add, list, remove, enable, test, deliveries.", no_args_is_help=True
)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="Webhook id (see `webhook list`).")]
DELIVERY_COLUMNS = (
    "id",
    "webhook_id",
    "type",
    "created_at",
    "status",
    "attempts",
    "last_status",
    "last_error",
    "next_attempt_at",
)
LIST_COLUMNS = ("id", "account", "url", "events", "enabled", "failing_since", "disabled_reason")


@app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST: http(s)://HOST/…")],
    events: Annotated[
        str,
        typer.Option(
            "--events",
            metavar="TYPE,TYPE",
            help="Event types, comma-separated: " + ", ".join(webhooks.EVENT_TYPES) + ".",
        ),
    ],
    account: AccountOpt = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret", metavar="S", help="The signing secret (default: a new random one)."
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Add a webhook; prints its id and signing secret (shown only now)."""
    hook = webhooks.add(state.db(ctx), account, url, events, secret)
    if fmt is Format.table:
        output.info(
            f"Added webhook [bold]{hook['id']}[/] for {output.escape(hook['account'])}:"
            f" {output.escape(', '.join(hook['events']))} to {output.escape(hook['url'])}"
        )
        output.info("Signing secret (shown only now; receivers check Trackly-Signature with it):")
        typer.echo(hook["secret"])
    else:
        output.emit_record({"id": hook["id"], "secret": hook["secret"]}, fmt)


@app.command("list")
def list_command(
    ctx: typer.Context,
    account: Annotated[
        str | None,
        typer.Option("--account", "-a", metavar="NAME", help="Only this account's webhooks."),
    ] = None,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """List webhooks (never their secrets)."""
    rows = webhooks.list_all(state.db(ctx), account)
    if fmt is not Format.json:
        rows = [r | {"events": ",".join(r["events"])} for r in rows]
    output.emit(
        rows,
        fmt,
        out,
        columns=LIST_COLUMNS if fmt is Format.table else None,
        empty="No webhooks yet: trackly webhook add URL --events click.first",
    )


@app.command("remove")
def remove(ctx: typer.Context, ref: IdArg, fmt: FormatOpt = Format.table) -> None:
    """Remove a webhook and its events (sent or not)."""
    hook = webhooks.remove(state.db(ctx), ref)
    if fmt is Format.table:
        output.info(
            f"Removed webhook [bold]{hook['id']}[/] ({output.escape(hook['url'])})"
            f" and {hook['events_deleted']:,} of its events."
        )
    else:
        output.emit_record(hook, fmt)


@app.command("enable")
def enable(ctx: typer.Context, ref: IdArg, fmt: FormatOpt = Format.table) -> None:
    """Enable a webhook again (one disabled after 24 hours of failed deliveries)."""
    hook = webhooks.enable(state.db(ctx), ref)
    if fmt is Format.table:
        output.info(f"Webhook [bold]{hook['id']}[/] is enabled: new events go to it.")
    else:
        output.emit_record(hook, fmt)


@app.command("test")
def test(ctx: typer.Context, ref: IdArg, fmt: FormatOpt = Format.table) -> None:
    """Send a webhook.test event now and show the receiver's answer (exit 1 if it failed)."""
    hook, outcome = delivery.send_test(state.db(ctx), ref)
    if fmt is not Format.table:
        output.emit_record(
            {"id": hook["id"], "url": hook["url"], "ok": outcome.ok}
            | {"status": outcome.status, "error": outcome.error, "ms": outcome.ms},
            fmt,
        )
    if not outcome.ok:
        output.fail(f"webhook {hook['id']} ({hook['url']}): {outcome.error}")
    if fmt is Format.table:
        output.info(f"Webhook [bold]{hook['id']}[/] answered {outcome.status} in {outcome.ms} ms.")


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(metavar="ID", help="Only this webhook's events.")
    ] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", "-a", metavar="NAME", help="Only this account's events."),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only events that failed and are not delivered.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100_000, help="The newest N events.")
    ] = webhooks.DEFAULT_DELIVERIES,
    fmt: FormatOpt = Format.table,
    out: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Webhook events, newest first: delivered, pending, retrying or given up."""
    rows = webhooks.deliveries(state.db(ctx), ref, account_ref=account, failed=failed, limit=limit)
    output.emit(
        rows,
        fmt,
        out,
        columns=(DELIVERY_COLUMNS if fmt is Format.table else None),
        empty="No webhook events" + (" that failed." if failed else " yet."),
    )
