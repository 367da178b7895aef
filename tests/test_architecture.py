"""The shape of the code: the core knows nothing of the CLI or the server and reads no
environment; every command explains itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from trackly_cli.cli import app

PACKAGE = Path(__file__).resolve().parents[1] / "trackly_cli"
CORE = sorted((PACKAGE / "core").glob("*.py"))
FORBIDDEN = {"typer", "rich", "bottle", "waitress"}
# click is Typer's base: the core must not import it itself
FORBIDDEN_DIRECT = FORBIDDEN | {"click"}
# the parts of trackly_cli that belong to the CLI or the server, never to the core
OUTER = {"cli", "commands", "output", "options", "state", "config", "server", "__main__"}


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.append("." * node.level + (node.module or ""))
    return names


def test_the_core_modules_exist():
    assert len(CORE) > 5
    assert {"store.py", "migrate.py", "accounts.py"} <= {p.name for p in CORE}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_imports_no_cli_or_server_library(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = []
    for name in _imports(tree):
        root = name.split(".")[0]
        if root in FORBIDDEN_DIRECT:
            bad.append(name)
        parts = name.split(".")
        if parts[0] == "trackly_cli" and len(parts) > 1 and parts[1] in OUTER:
            bad.append(name)
        if name.startswith(".."):  # relative imports that leave the core package
            bad.append(name)
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_takes_one_store_handle(path):
    """#13: core functions take a store.Store (SQLite or PostgreSQL), never a driver's own
    connection type or a wrapper of one; only store.py knows the SQLite class it extends."""
    text = path.read_text(encoding="utf-8")
    assert "sqlite_utils" not in text
    if path.name != "store.py":
        assert "sqlite3.Connection" not in text, path.name


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_reads_no_environment_variables(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
        ):
            found.append(f"line {node.lineno}: os.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in {"environ", "environb", "getenv", "getenvb"}:
                    found.append(f"line {node.lineno}: from os import {alias.name}")
        if isinstance(node, ast.Name) and node.id in {"environ", "getenv"}:
            found.append(f"line {node.lineno}: {node.id}")
    assert not found, f"{path.name} reads the environment: {found}"


def test_importing_the_whole_core_loads_no_cli_or_server_library():
    """The same rule at run time, transitive imports included, in a clean interpreter."""
    modules = [f"trackly_cli.core.{p.stem}" for p in CORE if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {sorted(FORBIDDEN)!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def _walk(command, path: tuple[str, ...] = ()):
    """Every (sub-)command of the Click tree that Typer builds, with its path of names."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))


def test_the_tree_has_the_foundation_commands():
    names = {" ".join(path) for path, _ in COMMANDS}
    expected = {
        "db path",
        "db migrate",
        "db backup",
        "db check",
        "account create",
        "account list",
        "account show",
        "account update",
        "domain add",
        "domain list",
        "domain remove",
        "domain default",
        "offer create",
        "offer list",
        "offer show",
        "offer update",
        "offer rotate-secret",
        "list create",
        "list update",
        "list show",
        "list list",
        "contacts import",
        "contacts list",
        "creative add",
        "creative list",
        "creative show",
    }
    assert expected <= names, expected - names


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "trackly" for p, _ in COMMANDS]
)
def test_every_command_has_help_text(path, command):
    text = (command.help or command.short_help or "").strip()
    assert text, f"`trackly {' '.join(path)}` has no help text"


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "trackly" for p, _ in COMMANDS]
)
def test_every_option_and_argument_has_help_text(path, command):
    missing = [
        p.name
        for p in command.params
        if p.name != "help" and not (getattr(p, "help", None) or "").strip()
    ]
    assert not missing, f"`trackly {' '.join(path)}`: no help for {missing}"
