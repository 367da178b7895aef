"""Shared fixtures: every test gets its own real SQLite file, and the real Typer app."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

from trackly_cli.cli import app
from trackly_cli.core import store


@pytest.fixture(autouse=True)
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TRACKLY_DB points at a fresh file in this test's folder, which is also the working
    directory (so outbox files land there)."""
    path = tmp_path / "trackly.db"
    monkeypatch.setenv("TRACKLY_DB", str(path))
    monkeypatch.delenv("TRACKLY_ACCOUNT", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


# typer.testing.CliRunner turns the Typer app into a command tree on every call (~25 ms, most of a
# CLI test's time). Build it once, as one `trackly` process does; it runs exactly as before.
# (raising=False: should Typer rename this helper, the tests stay correct, only slower.)
_command_once = functools.cache(typer.main.get_command)


@pytest.fixture(autouse=True)
def _build_the_command_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typer.testing, "_get_command", _command_once, raising=False)


class Cli:
    """The real CLI through CliRunner: `cli("offer", "list")` asserts exit code 0."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args, input: str | bytes | None = None, code: int = 0):
        result = self.runner.invoke(app, [str(a) for a in args], input=input)
        assert result.exit_code == code, (
            f"trackly {' '.join(map(str, args))} exited {result.exit_code}, expected {code}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\nexception: {result.exception!r}"
        )
        return result

    def json(self, *args, input: str | bytes | None = None):
        return json.loads(self(*args, "--format", "json", input=input).stdout)

    def error(self, *args, code: int = 1, input: str | bytes | None = None) -> str:
        """Run a command that must fail with one line on stderr (no traceback); return it."""
        result = self(*args, code=code, input=input)
        message = result.stderr.strip()
        assert message, "expected an error message on stderr"
        assert "Traceback" not in result.output
        if code == 1:
            assert message.startswith("Error: "), message
            assert "\n" not in message or "problems:" in message, message
        return message


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def db(db_path: Path):
    database = store.open_db(db_path)
    yield database
    database.close()


@pytest.fixture
def acme(cli: Cli) -> Cli:
    """An account `acme` with the tracking domain go.acme.test and an offer `Summer Sale`."""
    cli("account", "create", "acme")
    cli("domain", "add", "go.acme.test", "--account", "acme")
    cli(
        "offer",
        "create",
        "Summer Sale",
        "--url",
        "https://shop.example/summer?sub={link_id}",
        "--payout",
        "2.50",
    )
    return cli
