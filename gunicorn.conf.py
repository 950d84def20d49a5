"""Production serving: `gunicorn -c gunicorn.conf.py 'app:create_app()'` (what `make run` does).

Every value can be overridden on the command line or with KB_BIND / KB_WORKERS / KB_THREADS /
KB_TIMEOUT / KB_CLIENT_TIMEOUT. README.md ("Production serving") explains each choice.
"""

import errno
import os
import selectors
import socket
import time
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

bind = os.environ.get("KB_BIND", "127.0.0.1:5000")
# One worker process per core: a search is CPU-bound (encoder + BM25), so more processes than cores
# only adds memory (each process holds the query encoder and the index: about 240 MB resident with
# the model's ONNX export, about 520 MB when it falls back to PyTorch).
workers = int(os.environ.get("KB_WORKERS", "2"))
# A few threads per process, sharing its model: a sync worker is held by one client that is slow to
# send its request (two such connections stopped the site until the worker timeout), while a
# thread costs a few MB, not another copy of the model. Threads also cover a reader waiting on the
# feedback database. CPU-bound searches still queue for the cores, so more threads buy nothing more.
threads = int(os.environ.get("KB_THREADS", "4"))
# A client that stalls mid-request (headers or body) loses its connection after this many seconds
# of silence, which frees the thread it held.
CLIENT_TIMEOUT = float(os.environ.get("KB_CLIENT_TIMEOUT", "10"))
if not CLIENT_TIMEOUT > 0:
    raise ValueError(f"KB_CLIENT_TIMEOUT must be a positive number of seconds, got {CLIENT_TIMEOUT:g}")


class ClientSocket(socket.socket):
    """A client connection whose blocking reads and writes give up after CLIENT_TIMEOUT s of silence."""

    __slots__ = ()

    @classmethod
    def adopt(cls, sock: socket.socket) -> "ClientSocket":
        return cls(sock.family, sock.type, sock.proto, fileno=sock.detach())

    def setblocking(self, flag: bool) -> None:
        # gthread makes a connection blocking before reading a request from it, and a plain blocking
        # read waits for ever: block with a time limit instead
        if flag:
            self.settimeout(CLIENT_TIMEOUT)
        else:
            super().setblocking(False)

    # A stall is reported as the client going away: gunicorn then closes the connection quietly
    # (no traceback per slow client), and the app answers a stalled body with 408.
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        try:
            return super().recv(bufsize, flags)
        except TimeoutError as exc:
            raise ConnectionResetError(errno.ECONNRESET, f"client stopped sending for {CLIENT_TIMEOUT:g} s") from exc

    def sendall(self, data, flags: int = 0) -> None:
        try:
            super().sendall(data, flags)
        except TimeoutError as exc:
            raise BrokenPipeError(errno.EPIPE, f"client stopped reading for {CLIENT_TIMEOUT:g} s") from exc


class SlowClientSafeWorker(ThreadWorker):
    """gunicorn's gthread worker, with no thread waiting on a client that is not sending.

    Stock gthread hands a new connection to a pool thread, which waits up to 5 s for its first
    bytes and then blocks on the rest of the request with no limit: a handful of idle or
    half-sent connections fill the pool. Here a new connection waits in the worker's poller until
    it is readable (closed after `keepalive` seconds if it never is), and every read on it gives up
    after CLIENT_TIMEOUT seconds of silence.

    It leans on gthread's internals (pending_conns, the poller, TConn), so gunicorn is pinned in
    requirements.txt and tests/test_slow_clients.py fails if an upgrade changes them.
    """

    def enqueue_req(self, conn) -> None:
        # runs on the worker's main thread only (accept and poller callbacks)
        if not isinstance(conn.sock, ClientSocket):
            conn.sock = ClientSocket.adopt(conn.sock)
        if not conn.initialized and not conn.data_ready:
            conn.sock.setblocking(False)
            conn.timeout = time.monotonic() + self.cfg.keepalive
            self.pending_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))
            return
        super().enqueue_req(conn)


worker_class = SlowClientSafeWorker
# The app (cheap: no model, no index) is created once in the master before forking, so a bad
# setting stops the server at start instead of crash-looping workers, and the imported code is
# shared copy-on-write. The model and the index are loaded after the fork, once per worker, in
# post_worker_init below: PyTorch's thread pools must not be created before a fork.
preload_app = True
# A search takes tens of milliseconds; 30 s only catches a hung worker process (its main loop, which
# accepts connections, stopped). It also bounds the per-worker warm-up (model + index load, a few
# seconds) that runs before a worker serves. With threads it does not end a single slow request.
timeout = int(os.environ.get("KB_TIMEOUT", "30"))
graceful_timeout = 20
# A kept-alive connection with no next request, or a new one that has sent nothing yet, is closed
# after this many seconds; meanwhile it waits in the worker's poller, not in a thread.
keepalive = 5
# Recycle workers now and then (jittered so they never restart together).
max_requests = 5000
max_requests_jitter = 500
# Requests are small GETs; anything longer than this is refused by gunicorn with a 4xx.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-"
# Private by design, like the search analytics: no client address, no query string (what a
# student searched for), no user agent or referrer; just method, path, status, size and the time
# the worker spent on the request (%(M)s, milliseconds).
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
loglevel = "info"
# Never run the Flask debugger or debug error pages in production, whatever the environment says.
raw_env = ["FLASK_DEBUG=0"]
proc_name = "theyearabove"
# No runtime control socket (gunicornc): one less thing listening, and two instances on one host
# would otherwise share ~/.gunicorn/gunicorn.ctl.
control_socket_disable = True


def post_worker_init(worker):
    """Force debug off, then load the model and the index before the first request reaches this worker."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    app = worker.wsgi
    if getattr(app, "debug", False):
        worker.log.warning("debug mode was requested; it is never allowed under gunicorn and has been switched off")
        app.debug = False
    kb = app.extensions.get("kb") if hasattr(app, "extensions") else None
    if kb is not None:
        kb.warm_up()
