"""Routing goes by the Host header alone (#15): a request line naming another host is refused,
a fully qualified name's one trailing dot is fine but an empty label is not, and HTTP/1.1
without a Host header is a bad request. Raw requests to the real server, as an attacker sends
them (a client library would fix them up)."""

from __future__ import annotations

import socket

import pytest
from conftest import BROWSER_UA


def raw(port: int, request_line: str, *headers: str) -> tuple[int, str]:
    head = "\r\n".join([request_line, *headers, f"User-Agent: {BROWSER_UA}", "", ""])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head.encode())
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status_line, _, rest = data.decode("latin-1").partition("\r\n")
    return int(status_line.split()[1]), rest


@pytest.fixture
def served(campaign, live_server):
    return live_server(), campaign["by_slot"]["link1"][0]["id"]


@pytest.mark.slow
def test_the_host_header_alone_routes_a_request(served):
    server, link = served
    host = "Host: go.acme.test"
    assert raw(server.port, f"GET /{link} HTTP/1.1", host, "Connection: close")[0] == 302
    status, _ = raw(
        server.port, f"GET /{link} HTTP/1.1", "Host: go.acme.test.", "Connection: close"
    )
    assert status == 302  # the fully qualified form
    for bad in ("go.acme.test..", ".go.acme.test", "go..acme.test"):
        status, _ = raw(server.port, f"GET /{link} HTTP/1.1", f"Host: {bad}", "Connection: close")
        assert status == 404, bad
    # the request line names another host than the Host header: refused
    status, body = raw(
        server.port, f"GET http://evil.example/{link} HTTP/1.1", host, "Connection: close"
    )
    assert status == 400 and "another host" in body
    # the same host in both is fine
    status, _ = raw(
        server.port, f"GET http://go.acme.test/{link} HTTP/1.1", host, "Connection: close"
    )
    assert status == 302
    # no Host header at all
    status, body = raw(server.port, f"GET /{link} HTTP/1.0")
    assert status == 400 and "no Host header" in body
    assert raw(server.port, "GET /healthz HTTP/1.0")[0] == 200
