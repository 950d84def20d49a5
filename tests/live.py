"""Live servers for tests that need real sockets: gunicorn with the production config, or a
threaded Werkzeug server around an app object (for the browser)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
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


@contextlib.contextmanager
def gunicorn(
    content: Path, index: Path, *, workers: int = 1, env: dict | None = None, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `gunicorn -c gunicorn.conf.py 'app:create_app()'` on a free loopback port; yield (base URL, process)."""
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
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "app:create_app()"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/healthz", 180, proc)
        yield base, proc
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
def threaded_server(app) -> Iterator[str]:
    """Serve a Flask app object from a background thread; yield its base URL."""
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
