"""Live servers on loopback for benchmarks and tests: gunicorn (production config), a threaded Werkzeug server."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent


def run_build(content: Path | str, index: Path | str, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python scripts/build_index.py --content DIR --index DIR --quiet [extra...]` in its own process, output kept."""
    return subprocess.run(
        [sys.executable, "scripts/build_index.py", "--content", str(content), "--index", str(index), "--quiet", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    """A loopback TCP port nothing is listening on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(
    host: str, port: int, path: str, *, headers: Mapping[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    """One GET on a fresh connection; returns (status, body) whatever the status."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_until_up(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Return once `url` answers at all (any HTTP status); raise if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # answering, if unhappily (e.g. 503 with no index)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class Live(NamedTuple):
    """A running gunicorn: its base URL (http://127.0.0.1:PORT) and its master process."""

    base: str
    proc: subprocess.Popen

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


@contextlib.contextmanager
def gunicorn(
    content: Path,
    index: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    app: str = "app:create_app()",
    wait: bool = True,
) -> Iterator[Live]:
    """Run `gunicorn -c gunicorn.conf.py APP` on a free loopback port; yield (base URL, process).

    With `wait` (the default) the base URL answers /healthz before it is yielded; without it the
    caller measures or watches the start itself. The process is stopped on the way out.
    """
    port = free_port()
    full_env = {
        **os.environ,
        "KB_BIND": f"127.0.0.1:{port}",
        "KB_WORKERS": str(workers),
        "KB_CONTENT_DIR": str(content),
        "KB_INDEX_DIR": str(index),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **(env or {}),
    }
    # a file, not a pipe: a full pipe would block the workers' access log
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", app]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        if wait:
            wait_until_up(base + "/healthz", 180, proc)
        yield Live(base, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


@contextlib.contextmanager
def threaded_server(app: Any) -> Iterator[str]:
    """Serve a Flask app object from a background thread on a free loopback port; yield its base URL."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
