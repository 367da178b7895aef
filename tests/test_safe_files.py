"""Safe files (#14): every command that writes a file refuses an existing one without --force,
and leaves both the file and the database as they were; a missing database is never made by a
command that only reads (see test_migrate)."""

from __future__ import annotations

import pytest
from conftest import snapshot

OLD = "somebody else's file\n"


@pytest.fixture
def existing(tmp_path):
    path = tmp_path / "existing.csv"
    path.write_text(OLD, encoding="utf-8")
    return path


def test_shorten_keeps_another_campaigns_outbox(campaign, acme, db_path, tmp_path, existing):
    before = snapshot(db_path)
    args = ("shorten", "msg.txt", "--list", "vip", "--link", "link1=Summer Sale",
            "--link", "link2=https://plain.example/page", "--campaign", "july")  # fmt: skip
    message = acme.error(*args, "-o", existing)
    assert message == f"Error: {existing} exists: choose another file, or add --force to replace it"
    assert existing.read_text(encoding="utf-8") == OLD
    assert snapshot(db_path) == before  # no campaign made
    # the default outbox (CAMPAIGN.csv) is protected the same way
    (tmp_path / "july.csv").write_text(OLD, encoding="utf-8")
    assert "july.csv exists" in acme.error(*args)
    acme(*args, "-o", existing, "--force")
    assert existing.read_text(encoding="utf-8").startswith("phone,message_id,text")


@pytest.mark.parametrize(
    "command",
    [
        ["report", "--format", "csv"],
        ["report", "--by", "offer", "--format", "json"],
        ["clicks", "--format", "csv"],
        ["conversions", "--format", "json"],
        ["segment", "spring", "--not-clicked", "--format", "csv"],
        ["offer", "list"],
        ["contacts", "list"],
        ["account", "show", "acme"],
        ["db", "check"],
    ],
)
def test_listings_and_reports_keep_an_existing_file(campaign, acme, existing, command):
    message = acme.error(*command, "--output", existing)
    assert message == f"Error: {existing} exists: choose another file, or add --force to replace it"
    assert existing.read_text(encoding="utf-8") == OLD
    acme(*command, "--output", existing, "--force")
    assert existing.read_text(encoding="utf-8") != OLD


def test_report_html_keeps_an_existing_file(campaign, acme, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(OLD, encoding="utf-8")
    assert "report.html exists" in acme.error("report", "--html", page)
    assert page.read_text(encoding="utf-8") == OLD
    acme("report", "--html", page, "--force")
    assert "<html" in page.read_text(encoding="utf-8").lower()


def test_a_folder_is_never_a_file_to_write(campaign, acme, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    # (a usage error of the option itself; the outbox of shorten is checked the same way)
    assert "directory" in acme.error("report", "--output", folder, "--force", code=2)
    assert "directory" in acme.error("shorten", "msg.txt", "-o", folder, "--force", code=2)


def test_every_command_that_writes_a_file_takes_force():
    from typer.main import get_command

    from trackly_cli.cli import app

    def commands(group, path):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # (a group: Typer's own click, not importable)
                yield from commands(command, [*path, name])
            else:
                yield " ".join([*path, name]), command

    missing = [
        name
        for name, command in commands(get_command(app), [])
        if "--output" in {o for p in command.params for o in getattr(p, "opts", [])}
        and "--force" not in {o for p in command.params for o in getattr(p, "opts", [])}
    ]
    assert missing == []


def test_force_holds_for_its_own_command_only(acme, existing):
    acme("account", "list", "--format", "json", "--output", existing, "--force")
    assert "exists" in acme.error("account", "list", "--format", "json", "--output", existing)
