"""Production serving: `gunicorn -c gunicorn.conf.py 'app:create_app()'` (what `make run` does).

Every value can be overridden on the command line or with KB_BIND / KB_WORKERS / KB_TIMEOUT.
README.md ("Production serving") explains each choice.
"""

import os

bind = os.environ.get("KB_BIND", "127.0.0.1:5000")
# One sync worker per core: a search is CPU-bound (encoder + BM25), so more workers than cores
# only adds memory (each worker holds the query encoder and the index: about 240 MB resident with the
# model's ONNX export, about 520 MB when it falls back to PyTorch).
workers = int(os.environ.get("KB_WORKERS", "2"))
worker_class = "sync"
threads = 1
# The app (cheap: no model, no index) is created once in the master before forking, so a bad
# setting stops the server at start instead of crash-looping workers, and the imported code is
# shared copy-on-write. The model and the index are loaded after the fork, once per worker, in
# post_worker_init below: PyTorch's thread pools must not be created before a fork.
preload_app = True
# A search takes tens of milliseconds; 30 s only catches a hung worker. It also bounds the
# per-worker warm-up (model + index load, a few seconds) that runs before a worker serves.
timeout = int(os.environ.get("KB_TIMEOUT", "30"))
graceful_timeout = 20
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
