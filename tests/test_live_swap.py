"""Rebuilding under a running server: searches in a loop see 0 failures and 0 mixed-generation responses.

Each build changes one guide's "Generation marker N" section, so every response can be checked:
its hits must come from the generation it names, and only from that one.
"""

import json
import re
import textwrap
import threading
import time
import urllib.request

import pytest

from app import create_app
from benchmarks.serving import gunicorn, threaded_server
from kb.index.build import build_index
from kb.index.generation import current_path
from tests.conftest import ROOT
from tests.fakes import HashEmbedder

MARKER = re.compile(r"Generation marker (\d+)")
BUILDS = 6


def set_marker(content, n):
    path = content / "psa" / "psa-resits.md"
    text = re.sub(r"\n## Generation marker \d+\n.*", "", path.read_text(), flags=re.S)
    # replaced in one step: the site leaves a guide it reads half-written out of search results (its page
    # would 404 at that moment), which would look like a response missing its generation's marker
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        text + f"\n## Generation marker {n}\n\nThis section was written by build number {n} of the swap test.\n"
    )
    tmp.replace(path)


def hammer(base, stop, results):
    """Search in a loop until told to stop; record (status, generation, markers) or the exception."""
    i = 0
    while not stop.is_set():
        mode = ("keyword", "hybrid")[i % 2]
        i += 1
        try:
            with urllib.request.urlopen(
                f"{base}/api/search?q=generation+marker&mode={mode}&limit=10&spell=0", timeout=20
            ) as r:
                data = json.loads(r.read())
                results.append(
                    (r.status, data["generation"], [int(m) for h in data["hits"] for m in MARKER.findall(h["heading"])])
                )
        except Exception as exc:  # counted as a failed request
            results.append(("error", repr(exc)[:200], []))


def run_swaps(content, index, embedder, base, clients=4):
    expected = {}
    set_marker(content, 0)
    expected[build_index(content, index, embedder).generation] = 0
    stop, results = threading.Event(), []
    threads = [threading.Thread(target=hammer, args=(base, stop, results)) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        for n in range(1, BUILDS + 1):
            set_marker(content, n)
            report = build_index(content, index, embedder)  # default grace: what scripts/build_index.py does
            assert report.changed == ["psa-resits"] and report.keyword_mode.startswith("updated")
            expected[report.generation] = n
            time.sleep(0.4)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return (results, *classify(results, expected), expected)


def classify(results, expected):
    """(failed, mixed, generations seen): a response is mixed unless its hits carry exactly its generation's marker."""
    failed = [r for r in results if r[0] != 200]
    mixed = [r for r in results if r[0] == 200 and (r[1] not in expected or r[2] != [expected[r[1]]])]
    return failed, mixed, {r[1] for r in results if r[0] == 200}


def test_classify_catches_torn_responses():
    expected = {"gen-a": 0, "gen-b": 1}
    results = [
        (200, "gen-a", [0]),
        (200, "gen-b", [0]),
        (200, "gen-b", [0, 1]),
        (200, "gen-b", []),
        (200, "gen-x", [1]),
        ("error", "boom", []),
        (200, "gen-b", [1]),
    ]
    failed, mixed, seen = classify(results, expected)
    assert len(failed) == 1 and len(mixed) == 4 and seen == {"gen-a", "gen-b", "gen-x"}


@pytest.fixture
def swap_site(content_copy, tmp_path):
    embedder = HashEmbedder()
    index = tmp_path / "index"
    set_marker(content_copy, 0)
    build_index(content_copy, index, embedder)
    return content_copy, index, embedder, tmp_path


def test_swaps_under_a_threaded_server(swap_site):
    content, index, embedder, tmp = swap_site
    app = create_app(
        {
            "KB_CONTENT_DIR": str(content),
            "KB_INDEX_DIR": str(index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_DATABASE_URL": f"sqlite:///{tmp / 'a.sqlite3'}",
        },
        embedder=embedder,
    )
    with threaded_server(app) as base:
        results, failed, mixed, seen, expected = run_swaps(content, index, embedder, base)
    print(
        f"threaded server: {len(results)} requests, {len(failed)} failed, {len(mixed)} mixed, generations served "
        f"{len(seen)}/{len(expected)}"
    )
    assert len(results) > 50
    assert failed == [] and mixed == []
    assert len(seen) >= 4  # the server really switched generations while being searched


@pytest.mark.slow
def test_swaps_under_gunicorn_workers(swap_site):
    content, index, embedder, tmp = swap_site
    (tmp / "swap_wsgi.py").write_text(
        textwrap.dedent(
            f"""
            from app import create_app
            from tests.fakes import HashEmbedder
            app = create_app({{"KB_CONTENT_DIR": {str(content)!r}, "KB_INDEX_DIR": {str(index)!r},
                               "KB_RELOAD_INTERVAL": 0.2,
                               "KB_DATABASE_URL": "sqlite:///{tmp / "a.sqlite3"}"}}, embedder=HashEmbedder())
            """
        )
    )
    log_path = tmp / "gunicorn.log"
    # the production config (gunicorn.conf.py) around an app that embeds with the fake
    env = {"PYTHONPATH": f"{tmp}:{ROOT}"}
    with gunicorn(content, index, workers=2, env=env, log=log_path, app="swap_wsgi:app") as (base, _):
        results, failed, mixed, seen, expected = run_swaps(content, index, embedder, base)
    log = log_path.read_text()
    print(
        f"gunicorn, 2 workers: {len(results)} requests, {len(failed)} failed, {len(mixed)} mixed, generations "
        f"served {len(seen)}/{len(expected)}"
    )
    assert len(results) > 50, log
    assert failed == [] and mixed == [], (failed[:3], mixed[:3], log[-2000:])
    assert len(seen) >= 4
    assert "Traceback" not in log
    # old generations go once their grace period is over
    report = build_index(content, index, embedder, force=True, grace=0)
    assert len(list(index.glob("gen-*"))) == 2 and current_path(index).name == report.generation


@pytest.mark.parametrize("change", ["generation deleted", "current to another folder", "current to itself"])
def test_losing_the_live_generation_is_503_on_every_request_not_now_and_then(swap_site, tmp_path, change):
    """Once `current` stops leading to the generation being served, no request is answered from it any more."""
    import os
    import shutil

    from kb.errors import IndexNotBuiltError
    from kb.search.pipeline import Searcher
    from kb.search.request import SearchRequest

    content, index, embedder, tmp = swap_site
    searcher = Searcher(index, embedder, reload_interval=3600)
    assert searcher.search(SearchRequest("psa resit")).hits
    if change == "generation deleted":
        shutil.rmtree(current_path(index))
    else:
        (tmp_path / "elsewhere").mkdir()
        (index / "current").unlink()
        os.symlink(tmp_path / "elsewhere" if change == "current to another folder" else "current", index / "current")
    searcher._checked -= 3600  # the reload interval has passed: the next request looks at `current` again
    for _ in range(3):  # that request and the ones after it, inside the same interval
        with pytest.raises(IndexNotBuiltError):
            searcher.search(SearchRequest("psa resit"))
    build_index(content, index, embedder)
    searcher.invalidate()
    assert searcher.search(SearchRequest("psa resit")).hits
