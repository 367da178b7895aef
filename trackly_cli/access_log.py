"""`trackly serve --access-log`: one line per request on stderr, in the combined log format."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import unquote_plus


class AccessLog:
    """WSGI middleware: one line per request on stderr, in the combined log format."""

    def __init__(self, app: Callable, stream=None, ip: Callable[[dict], str] | None = None) -> None:
        """`ip(environ)`: the client address as the log shows it (REMOTE_ADDR by default)."""
        self.app = app
        self.stream = stream or sys.stderr
        self.ip = ip or (lambda environ: environ.get("REMOTE_ADDR") or "-")
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable):
        started = time.time()
        status_holder: list[str] = []

        def start(status: str, headers: list, exc_info=None):
            status_holder.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            path = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                path += "?" + redacted(environ["QUERY_STRING"])
            line = (
                '{ip} - - [{when}] "{method} {path} {proto}" {status} - "{ref}" "{ua}" {ms:.1f}ms\n'
            )
            text = line.format(
                ip=self._ip(environ),
                when=time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(started)),
                method=environ.get("REQUEST_METHOD", "-"),
                path=_log_safe(path),
                proto=environ.get("SERVER_PROTOCOL", "-"),
                status=status_holder[0] if status_holder else "-",
                ref=_log_safe(environ.get("HTTP_REFERER", "-")),
                ua=_log_safe(environ.get("HTTP_USER_AGENT", "-")),
                ms=(time.time() - started) * 1000,
            )
            with self.lock:
                self.stream.write(text)
                self.stream.flush()

    def _ip(self, environ: dict) -> str:
        try:
            return self.ip(environ)
        except Exception:  # unsure whether the full address may be logged: log none
            return "-"


def redacted(query: str) -> str:
    """The query string with the postback secret's value replaced, however its name is written
    (`postback%5Fsecret`, `POSTBACK_SECRET`, `+postback_secret`: what the app decodes to that
    name)."""
    pairs = []
    for pair in query.split("&"):
        name, _, _ = pair.partition("=")
        if unquote_plus(name).strip().lower() == "postback_secret":
            pair = f"{name}=[redacted]"
        pairs.append(pair)
    return "&".join(pairs)


def _log_safe(value: str, limit: int = 512) -> str:
    """No line breaks or quotes from a client reach the log as they are."""
    cleaned = value[:limit].encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return cleaned
