"""A build killed halfway (Ctrl-C, SIGTERM, a crash) leaves the previous index serving, and verify says so."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from app import create_app
from benchmarks.serving import run_build
from kb.index.generation import current_path
from tests.conftest import FIXTURE_CONTENT, ROOT, content_today

pytestmark = pytest.mark.slow


def start_build(*args):
    proc = subprocess.Popen(
        [sys.executable, "scripts/build_index.py", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "KB_TODAY": content_today().isoformat(),
        },  # the real guides are current then
        # as from a terminal: a test run started in the background by a non-interactive shell
        # inherits SIGINT ignored, and Python would then never see the Ctrl-C this test sends
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    out = {"stdout": b"", "stderr": b""}

    def pump(name, stream):
        for chunk in iter(lambda: stream.read1(4096), b""):
            out[name] += chunk

    threads = [threading.Thread(target=pump, args=(n, getattr(proc, n)), daemon=True) for n in ("stdout", "stderr")]
    for t in threads:
        t.start()
    return proc, out, threads


@pytest.fixture(scope="module")
def base_index(tmp_path_factory):
    index = tmp_path_factory.mktemp("base") / "index"
    first = run_build(FIXTURE_CONTENT, index)
    assert first.returncode == 0, first.stderr
    return index


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "crash"])
def test_killed_build_leaves_previous_index_serving(base_index, tmp_path, real_embedder, sig):
    index = tmp_path / "index"
    shutil.copytree(base_index, index, symlinks=True)
    live = current_path(index)

    # a full rebuild of the whole real guide collection, killed while it is embedding
    proc, out, threads = start_build("--content", str(ROOT / "content"), "--index", str(index), "--full")
    deadline = time.monotonic() + 600
    while b"Batches" not in out["stderr"] and b"Embedding" not in out["stderr"]:
        assert proc.poll() is None, out
        assert time.monotonic() < deadline, "the build never started embedding"
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    proc.send_signal(sig)
    code = proc.wait(120)
    for t in threads:
        t.join(10)
    stderr = out["stderr"].decode(errors="replace")
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130, stderr
        assert "Build interrupted; the previous index is still live and unchanged." in stderr

    assert current_path(index) == live
    app = create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(FIXTURE_CONTENT), "KB_INDEX_DIR": str(index)}, embedder=real_embedder
    )
    r = app.test_client().get("/api/search?q=can+I+resit+the+psa")
    assert r.status_code == 200 and r.get_json()["generation"] == live.name and r.get_json()["hits"]
    verify = app.test_cli_runner().invoke(args=["kb", "verify"])
    assert verify.exit_code == 0, verify.output
    assert "Result: healthy and up to date. Nothing to run." in verify.output

    # the next build finishes the job and leaves no debris
    again = run_build(FIXTURE_CONTENT, index, "--full")
    assert again.returncode == 0, again.stderr
    assert current_path(index) != live and not list(index.glob(".tmp-*"))
