"""The README's tour is run as written: every command in its console blocks, in order, in one
shell, against a fresh database. A command whose documented output is an error must fail; every
other must succeed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def tour() -> list[tuple[str, bool]]:
    """(command, documented as an error) for each `$ ` line of the README's console blocks."""
    steps = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            steps.append((command, output.lstrip().startswith("Error:")))
    return steps


def test_the_readme_has_a_tour_of_every_command():
    from typer.main import get_command

    from trackly_cli.cli import app

    documented = " ".join(command for command, _ in tour()) + README.read_text(encoding="utf-8")
    root = get_command(app)
    missing = [name for name in root.commands if f"trackly {name}" not in documented]
    assert not missing, f"commands the README never shows: {missing}"


# What the tour does that only a SQLite database can: on PostgreSQL these are refused with one
# line saying what to use instead (pg_dump).
SQLITE_ONLY = ("trackly db backup",)


@pytest.fixture(params=["sqlite", "postgres"])
def tour_db(request, tmp_path) -> tuple[str, str]:
    """(store, TRACKLY_DB) of the tour: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "tour.db")
    return "postgres", request.getfixturevalue("pg_url")


@pytest.mark.slow
def test_the_tour_runs_as_written(tmp_path, tour_db):
    """On both stores: every command as documented (on PostgreSQL, the SQLite-only ones are
    refused)."""
    kind, database = tour_db
    if shutil.which("curl") is None:
        pytest.fail("the README tour needs curl (.ci/run installs it)")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = str(free_port())
    steps = tour()
    script = ["set -u"]
    for index, (command, _) in enumerate(steps):
        script.append(command.replace("8765", port))
        script.append(f'echo "@@{index} $?"')
    env = dict(os.environ, TRACKLY_DB=database, COLUMNS="150")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    env.pop("TRACKLY_ACCOUNT", None)
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    codes = {int(i): int(rc) for i, rc in re.findall(r"^@@(\d+) (\d+)$", done.stdout, re.M)}
    assert len(codes) == len(steps), done.stdout + done.stderr
    fails = {
        i: error or (kind == "postgres" and steps[i][0].startswith(SQLITE_ONLY))
        for i, (_, error) in enumerate(steps)
    }
    wrong = [(steps[i][0], rc) for i, rc in codes.items() if (rc != 0) != fails[i]]
    assert not wrong, f"commands that did not behave as documented: {wrong}\n{done.stderr}"
    assert (tmp_path / "june.csv").exists() and (tmp_path / "report.html").exists()
