"""Slow clients against the real production server (gunicorn with gunicorn.conf.py on loopback).

A client that opens a connection and sends nothing, stops half-way through its headers, or
announces a body it never sends must not stop the site answering everyone else. The bounds
asserted here are generous (a prompt answer takes well under a second); what they rule out is
the site waiting for a slow client until gunicorn's 30 s worker timeout, or for ever.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from benchmarks.serving import gunicorn
from tests.conftest import FIXTURE_CONTENT

pytestmark = pytest.mark.slow

PROMPT = 5.0  # seconds: "answers promptly", far below the 30 s worker timeout


def _connect(base: str) -> socket.socket:
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    return sock


def idle_connection(base: str) -> socket.socket:
    """Connect and send nothing."""
    return _connect(base)


def incomplete_headers(base: str) -> socket.socket:
    """A request whose headers never end (no blank line): a slowloris."""
    sock = _connect(base)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    return sock


def short_body(base: str, slug: str = "psa-resits") -> socket.socket:
    """A feedback post announcing 1,000 bytes of form and sending 9."""
    sock = _connect(base)
    sock.sendall(
        f"POST /guides/{slug}/feedback HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nhelpful=y".encode()
    )
    return sock


def answer(url: str, within: float) -> int | None:
    """The status of GET url, or None when nothing came back within `within` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=within) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (TimeoutError, urllib.error.URLError, OSError):
        return None


def read_until_closed(sock: socket.socket, within: float) -> bytes:
    """What the server sends on a connection until it closes it; raises TimeoutError if it never does."""
    sock.settimeout(within)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_slow_clients_do_not_stall_the_production_server(fixture_index, tmp_path):
    log = tmp_path / "gunicorn.log"
    with gunicorn(FIXTURE_CONTENT, fixture_index, workers=2, log=log) as (base, _):
        slow = [idle_connection(base), incomplete_headers(base), short_body(base)]
        try:
            time.sleep(0.5)  # let the server pick every slow connection up first
            for path in ("/healthz", "/guides/psa-resits", "/api/search?q=resit"):
                assert answer(base + path, PROMPT) == 200, path
        finally:
            for s in slow:
                s.close()
    assert "WORKER TIMEOUT" not in log.read_text()


def test_a_stalled_client_is_dropped_and_cannot_pin_the_workers_threads(fixture_index, tmp_path):
    """One worker with two threads: more slow clients than threads, and the site still answers."""
    log = tmp_path / "gunicorn.log"
    env = {"KB_THREADS": "2", "KB_CLIENT_TIMEOUT": "2"}
    with gunicorn(FIXTURE_CONTENT, fixture_index, workers=1, env=env, log=log) as (base, _):
        # connections that send nothing wait in the worker's poller, not in its threads
        idle = [idle_connection(base) for _ in range(4)]
        try:
            time.sleep(0.5)
            assert answer(base + "/healthz", PROMPT) == 200
        finally:
            for s in idle:
                s.close()
        # clients that stall mid-request hold a thread for at most KB_CLIENT_TIMEOUT of silence
        headers = [incomplete_headers(base) for _ in range(3)]
        body = short_body(base)
        try:
            assert answer(base + "/healthz", 15) == 200
            reply = read_until_closed(body, 15)
            assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
            assert b"stopped sending" in reply and b"Traceback" not in reply
            for s in headers:
                assert read_until_closed(s, 15) == b""  # dropped without an answer
        finally:
            for s in (*headers, body):
                s.close()
    text = log.read_text()
    assert "Traceback" not in text and "WORKER TIMEOUT" not in text
