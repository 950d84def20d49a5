"""Production serving: `gunicorn -c gunicorn.conf.py 'app:create_app()'` (what `make run` does)."""

import os

bind = os.environ.get("KB_BIND", "127.0.0.1:5000")
# One sync worker per core: a search is CPU-bound (encoder + BM25), so more workers than cores
# only adds memory. Each worker loads the model once, right after it starts (post_worker_init).
workers = int(os.environ.get("KB_WORKERS", "2"))
worker_class = "sync"
threads = 1
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
loglevel = "info"
# Never run the Flask debugger in production.
raw_env = ["FLASK_DEBUG=0"]
proc_name = "theyearabove"


def post_worker_init(worker):
    """Load the model and the index before the first request reaches this worker."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    kb = worker.wsgi.extensions.get("kb") if hasattr(worker.wsgi, "extensions") else None
    if kb is not None:
        kb.warm_up()
