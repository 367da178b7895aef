"""The wheel ships the migrations: an installed Trackly, run from another folder, finds and
applies them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "-q",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("trackly-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_the_migrations(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for dialect in ("sqlite", "postgres"):
        assert f"trackly_cli/migrations/{dialect}/0001_initial.sql" in names
        folder = f"trackly_cli/migrations/{dialect}/"
        shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith(folder)}
        assert shipped == {p.name for p in (REPO / "migrations" / dialect).glob("*.sql")}
    assert "trackly_cli/core/store.py" in names
    assert "trackly_cli/cli.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "trackly = trackly_cli.cli:main" in archive.read(entry_points).decode()


def test_the_unpacked_wheel_finds_and_applies_its_migrations(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = tmp_path / "data" / "fresh.db"
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        import trackly_cli
        from trackly_cli.core import migrate, store
        print(trackly_cli.__file__)
        print(migrate.migrations_dir())
        db = store.open_db({str(database)!r})
        print(sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master")))
        print([r[0] for r in db.execute("SELECT name FROM schema_migrations")])
        db.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stderr
    module_file, migrations_dir, tables, ledger = result.stdout.strip().splitlines()
    assert Path(module_file).resolve().is_relative_to(site.resolve())
    shipped = site / "trackly_cli" / "migrations" / "sqlite"
    assert Path(migrations_dir).resolve() == shipped.resolve()
    assert "'accounts'" in tables
    assert "'schema_migrations'" in tables
    assert ledger == str(sorted(p.name for p in (REPO / "migrations" / "sqlite").glob("*.sql")))
    assert database.exists()
