"""Answers every part of the dashboard gives the same way."""

from __future__ import annotations

from bottle import HTTPResponse, request, response


def scheme() -> str:
    """http or https, as the WSGI server says: waitress takes X-Forwarded-Proto only from a
    --trusted-proxy (Bottle's request.urlparts would believe it from anyone)."""
    return request.environ.get("wsgi.url_scheme", "http")


def see_other(path: str):
    """A 303 to a path of this app, with the cookies set so far. The Location stays relative:
    Bottle's redirect() would make it absolute from an X-Forwarded-Host that anyone can send."""
    answer = response.copy(cls=HTTPResponse)
    answer.status = 303
    answer.body = ""
    answer.set_header("Location", path)
    raise answer
