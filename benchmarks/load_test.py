#!/usr/bin/env python3
"""Bounded load test: gunicorn (gunicorn.conf.py) on a free loopback port, N clients for T seconds.

    python benchmarks/load_test.py [--clients 8] [--duration 60] [--workers 2] [--threads 4] [--slow 2]
                                [--write docs/BENCHMARKS.md] [--json]

Traffic is a mix of what readers do: JSON searches (the type-ahead), search result pages, guide
pages, lists and a static asset. Half of the searches repeat common questions (the encoder's query
cache answers those), half are variants never seen before (the encoder runs). Prints requests,
errors and p50/p95/p99 latency, overall and per kind, and the workers' resident memory at the end;
--write puts the same figures in the `## Load test` section of a markdown file, leaving other
sections alone.

--slow N keeps N slow connections open for the whole run besides the clients, alternating a
request whose headers never end and a feedback post that announces more body than it sends; each
is reopened as soon as the server drops it, so the site is under that pressure throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.serving import gunicorn, http_get  # noqa: E402

COMMON = [
    "can I use the BNF in the PSA",
    "what happens if I fail the PSA",
    "how does preference informed allocation work",
    "horus vs turas",
    "how long is the psa",
    "what is the sjt used for",
    "ukmla akt dates",
    "how do I rank foundation schools",
    "what should I do on my first ward round",
    "how do I get my DOPS signed off",
    "when do F1 rotas come out",
    "what is TAB",
    "how to prepare for the CPSA",
    "what is linking in foundation applications",
    "study groups for finals",
    "pre-allocation criteria",
    "how is F1 pay worked out",
    "shadowing before F1",
    "what is an ARCP",
    "elective planning",
]
VARIANT_WORDS = [
    "exam", "resit", "deadline", "advice", "rota", "oriel", "prescribing", "wellbeing", "placement", "portfolio",
    "marks", "rank", "interview", "induction", "sign off", "questions", "revision", "timeline", "fail", "support",
    "psa", "sjt", "ukfpo", "clerking", "osce", "scotland", "wales", "mentoring", "pay", "registration",
]  # fmt: skip
MIX = [("api_search", 40), ("search_page", 15), ("guide_page", 30), ("list_page", 10), ("static", 5)]


HEADERS = {"Accept-Encoding": "identity", "User-Agent": "load-test"}


def fetch(port: int, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    return http_get("127.0.0.1", port, path, headers=HEADERS, timeout=timeout)


def wait_ready(port: int, proc: subprocess.Popen, log_path: Path, workers: int, timeout: float = 300) -> dict:
    """Wait until /healthz answers 200 and every worker has finished its warm-up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}; see its log")
        try:
            status, body = fetch(port, "/healthz", timeout=60)
            if status == 200:
                log = log_path.read_text(errors="replace")
                if log.count("kb.service: warm:") >= workers:
                    return json.loads(body)
            elif status == 503:
                raise SystemExit(f"the server has no usable index: {json.loads(body).get('error')}")
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not become ready in time")


class Client(threading.Thread):
    def __init__(self, port: int, stop_at: float, slugs: list[str], lists: list[str], seed: int):
        super().__init__(daemon=True)
        self.port, self.stop_at, self.slugs, self.lists = port, stop_at, slugs, lists
        self.rng = random.Random(seed)
        self.samples: list[tuple[str, float, int]] = []  # (kind, seconds, status or 0 for a failure)
        self.failures: Counter[str] = Counter()

    def query(self) -> str:
        base = self.rng.choice(COMMON)
        if self.rng.random() < 0.5:
            return base
        return f"{base} {self.rng.choice(VARIANT_WORDS)} {self.rng.choice(VARIANT_WORDS)} {self.rng.randint(1, 10**6)}"

    def path(self, kind: str) -> str:
        from urllib.parse import quote_plus

        if kind == "api_search":
            return f"/api/search?q={quote_plus(self.query())}&limit=8"
        if kind == "search_page":
            return f"/search?q={quote_plus(self.query())}"
        if kind == "guide_page":
            return f"/guides/{self.rng.choice(self.slugs)}"
        if kind == "list_page":
            return self.rng.choice(self.lists)
        return self.rng.choice(["/static/style.css", "/static/search.js"])

    def run(self) -> None:
        kinds, weights = zip(*MIX, strict=True)
        while time.monotonic() < self.stop_at:
            kind = self.rng.choices(kinds, weights)[0]
            path = self.path(kind)
            t0 = time.perf_counter()
            try:
                status, _ = fetch(self.port, path)
            except Exception as exc:  # a timeout or a refused connection is an error, not a crash
                status = 0
                self.failures[f"{kind}: {exc.__class__.__name__}"] += 1
            self.samples.append((kind, time.perf_counter() - t0, status))
            if status and status >= 400:
                self.failures[f"{kind}: HTTP {status}"] += 1


class SlowConnections(threading.Thread):
    """N connections that stall mid-request, each reopened as soon as the server drops it."""

    def __init__(self, port: int, count: int, stop_at: float, slug: str):
        super().__init__(daemon=True)
        self.port, self.count, self.stop_at, self.slug = port, count, stop_at, slug
        self.opened = 0
        self.dropped: Counter[str] = Counter()  # how the server ended them: "408", "closed", ...

    def open(self, i: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if i % 2 == 0:  # headers that never end
            sock.sendall(b"GET / HTTP/1.1\r\nHost: load-test\r\nUser-Agent: slow-client\r\n")
        else:  # a form post announcing 1,000 bytes and sending 9
            sock.sendall(
                f"POST /guides/{self.slug}/feedback HTTP/1.1\r\nHost: load-test\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nhelpful=y".encode()
            )
        self.opened += 1
        return sock

    def run(self) -> None:
        socks = [self.open(i) for i in range(self.count)]
        try:
            while time.monotonic() < self.stop_at:
                readable, _, _ = select.select(socks, [], [], 0.2)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
                    self.dropped[status] += 1
                    i = socks.index(sock)
                    sock.close()
                    socks[i] = self.open(i)
        finally:
            for sock in socks:
                sock.close()


def worker_memory(master_pid: int) -> list[int]:
    """Resident memory (KiB) of each child of the gunicorn master."""
    sizes = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if re.search(rf"^PPid:\s+{master_pid}$", text, re.M):
            rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
            if rss:
                sizes.append(int(rss.group(1)))
    return sorted(sizes)


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    arr = np.asarray(values) * 1000
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


def report_markdown(args, result: dict) -> str:
    o = result["overall"]
    lines = [
        "## Load test",
        "",
        f"Command: `{result['command']}`",
        "",
        f"gunicorn with `gunicorn.conf.py` ({args.workers} workers x {args.threads} threads, preloaded app, "
        "model warmed in each worker) on loopback, "
        f"serving the real content index ({result['health'].get('chunks')} chunks, "
        f"{result['health'].get('generation')}, "
        f"model {result['health'].get('model')}). {args.clients} concurrent clients (threads, one new connection "
        "per request) for "
        f"{args.duration:.0f} s; traffic mix: "
        + ", ".join(f"{k} {w}%" for k, w in MIX)
        + "; half the searches repeat common "
        "questions (answered from the encoder's query cache), half are new variants (the encoder runs).",
        "",
    ]
    if args.slow:
        slow = result["slow"]
        lines += [
            f"Besides the clients, {args.slow} slow connections were held open throughout (half with headers "
            "that never end, half "
            "a feedback post sending 9 of 1,000 announced bytes), reopened whenever the server dropped one: "
            f"{slow['opened']} opened, "
            "ended by the server: "
            + (", ".join(f"{k} x{n}" for k, n in sorted(slow["dropped"].items())) or "none")
            + ".",
            "",
        ]
    lines += [
        f"Measured {result['when']} on {result['machine']}.",
        "",
        f"**{o['requests']} requests, {o['errors']} errors, {o['rps']:.1f} requests/s; latency p50 {o['p50']:.1f} ms, "
        f"p95 {o['p95']:.1f} ms, p99 {o['p99']:.1f} ms, max {o['max']:.1f} ms.**",
        "",
        f"Time inside the workers (gunicorn access log, {result['served']['requests']} requests): p50 "
        f"{result['served']['p50']:.1f} ms, "
        f"p95 {result['served']['p95']:.1f} ms, p99 {result['served']['p99']:.1f} ms; the rest of the "
        "client-side latency is waiting "
        f"for one of the {args.workers} workers, with {args.clients} clients queued on them.",
        "",
        "Workers' resident memory at the end: "
        f"{', '.join(f'{k / 1024:.0f} MiB' for k in result['worker_rss_kib']) or 'not measured'}.",
        "",
        "| kind | requests | errors | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, k in result["kinds"].items():
        lines.append(
            f"| {kind} | {k['requests']} | {k['errors']} | {k['p50']:.1f} | {k['p95']:.1f} | {k['p99']:.1f} | "
            f"{k['max']:.1f} |"
        )
    lines += ["", result["note"], ""]
    if result["failures"]:
        lines += ["Errors by kind: " + ", ".join(f"{k} x{n}" for k, n in result["failures"].items()), ""]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the `## Load test` section of a markdown file (or append it), keeping the rest."""
    text = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else "# Benchmarks\n\nMeasured figures and the commands that produced them.\n"
    )
    pattern = re.compile(r"^## Load test\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (KB_WORKERS)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (KB_THREADS)")
    parser.add_argument(
        "--slow", type=int, default=0, metavar="N", help="also hold N slow connections open for the whole run"
    )
    parser.add_argument("--content", default=str(ROOT / "content"))
    parser.add_argument("--index", default=str(ROOT / "index"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--write", metavar="MARKDOWN", help="also write the figures into this file's '## Load test' section"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one line of JSON at the end")
    args = parser.parse_args()

    from kb.index.generation import index_status

    st = index_status(args.content, args.index)
    if not st.built or st.stale:
        print(
            f"The index at {args.index} is not usable or not current ({st.reason}); run: python scripts/build_index.py",
            file=sys.stderr,
        )
        return 2

    log_path = Path(tempfile.gettempdir()) / f"theyearabove-load-test-{os.getpid()}.log"
    load_before = os.getloadavg()
    with gunicorn(
        Path(args.content).resolve(),
        Path(args.index).resolve(),
        workers=args.workers,
        env={"KB_THREADS": str(args.threads)},
        log=log_path,
        wait=False,
    ) as server:
        port, proc = server.port, server.proc
        health = wait_ready(port, proc, log_path, args.workers)
        guides = json.loads(fetch(port, "/api/guides")[1])
        slugs = [g["slug"] for g in guides["guides"]]
        lists = ["/", "/guides", "/tags"] + [c["url"] for c in guides["categories"]]
        print(
            f"gunicorn ready on 127.0.0.1:{port} ({args.workers} workers, log {log_path}); {args.clients} "
            f"clients for {args.duration:.0f} s ...",
            flush=True,
        )
        stop_at = time.monotonic() + args.duration
        slow = SlowConnections(port, args.slow, stop_at, slugs[0])
        if args.slow:
            slow.start()
            time.sleep(0.5)  # the slow connections are in place before the clients start
            stop_at += 0.5
        started = time.monotonic()
        clients = [Client(port, stop_at, slugs, lists, args.seed * 1000 + i) for i in range(args.clients)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        elapsed = time.monotonic() - started
        load_after = os.getloadavg()
        rss = worker_memory(proc.pid)
        if args.slow:
            slow.join()

    samples = [s for c in clients for s in c.samples]
    failures: Counter[str] = Counter()
    for c in clients:
        failures.update(c.failures)
    by_kind: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for kind, secs, status in samples:
        by_kind[kind].append((secs, status))

    def summary(rows: list[tuple[float, int]]) -> dict:
        errors = sum(1 for _, status in rows if status == 0 or status >= 400)
        return {"requests": len(rows), "errors": errors, **percentiles([s for s, _ in rows])}

    # the workers' own time per request (gunicorn access log), to tell service time from queueing
    served = [
        int(m.group(2)) / 1000
        for m in re.finditer(r'"GET (\S+)" \d{3} \S+ (\d+)ms$', log_path.read_text(errors="replace"), re.M)
        if not m.group(1).startswith(("/healthz", "/api/guides"))  # readiness and set-up requests
    ]
    overall = summary([(s, st) for _, s, st in samples])
    overall["rps"] = overall["requests"] / elapsed if elapsed else 0.0
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    result = {
        "command": " ".join(["python benchmarks/load_test.py", *sys.argv[1:]]),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPU cores ({cpu or 'unknown CPU'}), Python {sys.version.split()[0]}",
        "health": health,
        "overall": overall,
        "kinds": {k: summary(by_kind[k]) for k, _ in MIX if by_kind.get(k)},
        "failures": dict(failures),
        "served": {"requests": len(served), **percentiles(served)},
        "worker_rss_kib": rss,
        "slow": {"connections": args.slow, "opened": slow.opened, "dropped": dict(slow.dropped)},
        "note": (
            f"Load average (1 min) was {load_before[0]:.2f} before the run and {load_after[0]:.2f} at its end; "
            "the load generator "
            f"runs on the same {os.cpu_count()} cores as the server, and any other work on the machine shares "
            "them too, so these "
            "figures are a floor, not a ceiling."
        ),
    }
    md = report_markdown(args, result)
    print()
    print(md)
    if args.write:
        write_section(Path(args.write), md)
        print(f"(written to {args.write})")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "health"}))
    return 0 if overall["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
