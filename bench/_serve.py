"""What the benches that drive a live `trackly serve` share: the real CLI in a subprocess, and
a server on a free loopback port for the length of a `with` block."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def trackly(db: Path, *args: str) -> str:
    """Run the real CLI on `db` (in its folder); its standard output."""
    return subprocess.run(
        [sys.executable, "-m", "trackly_cli", "--db", str(db), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=db.parent,
    ).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(db: Path, *options: str) -> Iterator[int]:
    """`trackly serve` on `db` with `options`, answering on the port this yields."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trackly_cli",
            "--db",
            str(db),
            "serve",
            "--port",
            str(port),
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(60)
