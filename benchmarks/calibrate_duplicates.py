#!/usr/bin/env python3
"""Calibrate the validator's near-duplicate threshold on the real guides; prints the figures.

    python benchmarks/calibrate_duplicates.py [--content DIR] [--sample N] [--seed S]

Two distributions, both with the real all-MiniLM-L6-v2 model over section text:
  * genuinely different guides: for every section, its best similarity to any section of another guide;
  * copies: sampled sections copied into a new guide verbatim, lightly edited and moderately edited,
    compared with the section they were copied from.
A good threshold sits above the first and below most of the second.
"""

from __future__ import annotations

import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import click  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from kb import config  # noqa: E402
from kb.content.guide import guide_paths  # noqa: E402
from kb.engines.embedding import make_encoder  # noqa: E402
from kb.tools.validate import (  # noqa: E402
    DUPLICATE_THRESHOLD,
    MIN_DUPLICATE_CHARS,
    Section,
    SectionVectors,
    read_source,
    sections_of,
)

# Everyday rewording a contributor might do to a pasted section.
SYNONYMS = {
    "you": "students",
    "your": "a student's",
    "can": "may",
    "should": "ought to",
    "get": "receive",
    "make": "create",
    "people": "students",
    "most": "many",
    "important": "key",
    "often": "frequently",
    "because": "since",
    "before": "prior to",
    "after": "following",
    "about": "roughly",
    "check": "verify",
    "need": "have",
    "also": "as well",
    "but": "though",
    "use": "rely on",
    "know": "understand",
    "help": "support",
    "start": "begin",
    "big": "large",
    "every": "each",
    "whole": "entire",
    "usually": "generally",
    "quickly": "fast",
    "ask": "check with",
    "find": "locate",
    "show": "demonstrate",
}


def reword(text: str, rng: random.Random, rate: float) -> str:
    words = text.split(" ")
    for i, w in enumerate(words):
        key = w.lower()
        if key in SYNONYMS and rng.random() < rate:
            words[i] = SYNONYMS[key]
    return " ".join(words)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def light_edit(text: str, rng: random.Random) -> str:
    """Half the everyday words reworded and two neighbouring sentences swapped."""
    sents = sentences(reword(text, rng, 0.5))
    if len(sents) > 2:
        i = rng.randrange(len(sents) - 1)
        sents[i], sents[i + 1] = sents[i + 1], sents[i]
    return " ".join(sents)


def moderate_edit(text: str, rng: random.Random) -> str:
    """Every everyday word reworded, one sentence dropped and a sentence of the copier's own added."""
    sents = sentences(reword(text, rng, 1.0))
    if len(sents) > 3:
        sents.pop(rng.randrange(len(sents)))
    sents.append("That is what worked for us in our year, so ask around at your own school too.")
    return " ".join(sents)


@click.command()
@click.option("--content", "content_dir", default=None, help="Content folder (default: KB_CONTENT_DIR).")
@click.option("--sample", default=120, show_default=True, help="Sections copied per edit level.")
@click.option("--seed", default=7, show_default=True)
def main(content_dir: str | None, sample: int, seed: int) -> None:
    """Print similarity figures for different guides versus copied sections, and the threshold's error rates."""
    s = config.validate({k: v for k, v in os.environ.items() if k in config.BY_NAME})
    content = Path(content_dir or s["KB_CONTENT_DIR"]).resolve()
    sources = [src for p in guide_paths(content) if (src := read_source(p.resolve(), content))]
    sections = [sec for src in sources for sec in sections_of(src, MIN_DUPLICATE_CHARS)]
    embedder = make_encoder(s["KB_MODEL"], threads=s["KB_TORCH_THREADS"])
    vectors = SectionVectors(embedder, Path(s["KB_INDEX_DIR"]) / ".check-cache")
    t0 = time.perf_counter()
    matrix = vectors.vectors(sections)
    click.echo(
        f"{len(sources)} guides, {len(sections)} sections of >= {MIN_DUPLICATE_CHARS} characters "
        f"({vectors.embedded} embedded, {vectors.cached} cached, {time.perf_counter() - t0:.1f} s)"
    )

    sims = matrix @ matrix.T
    slugs = np.array([sec.slug for sec in sections])
    sims[slugs[:, None] == slugs[None, :]] = -1.0
    best = sims.max(axis=1)
    pct = np.percentile(best, [50, 90, 95, 99, 100])
    click.echo("\nDifferent guides: each section's best match in another guide")
    click.echo("  median {:.3f}  p90 {:.3f}  p95 {:.3f}  p99 {:.3f}  max {:.3f}".format(*pct))
    shown: set[frozenset] = set()
    for i in np.argsort(-best):
        j = int(sims[i].argmax())
        pair = frozenset((i, j))
        if pair in shown:
            continue
        shown.add(pair)
        click.echo(f"  {best[i]:.3f}  {sections[i].where}  ~  {sections[j].where}")
        if len(shown) == 5:
            break

    rng = random.Random(seed)
    picked = rng.sample(range(len(sections)), min(sample, len(sections)))
    copies: dict[str, np.ndarray] = {}
    for level, edit in (
        ("verbatim", lambda t: t),
        ("light edit", lambda t: light_edit(t, rng)),
        ("moderate edit", lambda t: moderate_edit(t, rng)),
    ):
        texts = [edit(sections[i].text) for i in picked]
        copied = [Section("copy.md", "copy", "", "", 0, t) for t in texts]
        vec = vectors.vectors(copied)
        copies[level] = np.einsum("ij,ij->i", vec, matrix[picked])
    click.echo(f"\nCopied sections ({len(picked)} each), similarity to the original")
    for level, values in copies.items():
        click.echo(
            "  {:<14} min {:.3f}  p5 {:.3f}  p25 {:.3f}  median {:.3f}".format(
                level, *np.percentile(values, [0, 5, 25, 50])
            )
        )

    # Why the checker does not reuse the search index's vectors: they embed "guide title > heading"
    # before the text, so the same text under another guide's title no longer looks the same.
    titles = {src.slug: str((yaml.safe_load(src.fm_text) or {}).get("title") or src.slug) for src in sources}
    others = sorted(set(titles.values()))
    originals = [f"{titles[sections[i].slug]} > {sections[i].heading}\n{sections[i].text}" for i in picked]
    moved = [
        f"{rng.choice([t for t in others if t != titles[sections[i].slug]])} > "
        f"{sections[i].heading}\n{sections[i].text}"
        for i in picked
    ]
    prefixed = np.einsum("ij,ij->i", embedder.encode(originals), embedder.encode(moved))
    click.echo(
        "  {:<14} min {:.3f}  p5 {:.3f}  p25 {:.3f}  median {:.3f}   (search-index style: title and heading "
        "prefixed)".format("verbatim", *np.percentile(prefixed, [0, 5, 25, 50]))
    )

    click.echo("\nthreshold  false alarms on the real guides  caught: verbatim / light / moderate")
    for t in [0.86, 0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.96]:
        mark = "  <- DUPLICATE_THRESHOLD" if abs(t - DUPLICATE_THRESHOLD) < 1e-9 else ""
        caught = " / ".join(f"{(v >= t).mean() * 100:5.1f}%" for v in copies.values())
        click.echo(f"  {t:.2f}     {int((best >= t).sum()):3d} sections of {len(best)}            {caught}{mark}")


if __name__ == "__main__":
    main()
