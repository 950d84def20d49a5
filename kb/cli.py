"""`flask kb ...` commands and the scripts' entry points: thin wrappers over the library."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import time
from pathlib import Path

import click
from flask.cli import AppGroup

from kb import clock, config
from kb.engines.embedding import SentenceTransformerEmbedder, make_encoder
from kb.errors import ConfigError, ContentError, KBError, StoreError
from kb.index.build import build_index
from kb.index.generation import BUILD_COMMAND, GRACE_SECONDS, index_status
from kb.tools.validate import (
    DUPLICATE_THRESHOLD,
    CheckOptions,
    changed_files,
    check_content,
    default_base,
    format_report,
)


def _settings() -> dict:
    """Settings from the Flask app when inside one, else from KB_* environment variables."""
    from flask import current_app

    try:
        return {s.name: current_app.config[s.name] for s in config.SETTINGS}
    except RuntimeError:
        return env_settings()


def env_settings() -> dict:
    """Settings from KB_* environment variables; a bad value is a clear message and exit status 2, not a traceback."""
    try:
        return config.validate({k: v for k, v in os.environ.items() if k in config.BY_NAME})
    except ConfigError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(2)


def _terminate(signum, frame):
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the build cleans up after itself
    raise KeyboardInterrupt


def run_build(
    content: str,
    index: str,
    model: str,
    full: bool,
    if_stale: bool,
    quiet: bool,
    as_json: bool,
    threads: int = 0,
    keep: int = 2,
) -> int:
    """Build the index; print every content problem as path:line:col and a summary. Returns exit code."""
    started = time.perf_counter()
    # a few changed passages go through the model's ONNX export (no torch import), which the server
    # encodes queries with too; it is made here once per model
    embedder = make_encoder(model, index, threads=threads)
    if if_stale:
        st = index_status(content, index)
        if st.built and not st.stale:
            click.echo(f"Index {st.generation} is up to date with {content}.")
            _prepare_query_encoder(embedder, as_json)
            return 0
        click.echo(f"Building the index: {st.reason}.")
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding caller): leave signals alone
        previous = None
    try:
        report = build_index(
            content, index, embedder, full=full, progress=not quiet and not as_json, keep=keep, grace=GRACE_SECONDS
        )
    except ContentError as exc:
        for p in exc.problems:
            click.echo(p.format(), err=True)
        errors = sum(p.level == "error" for p in exc.problems)
        click.echo(
            f"Build stopped: {errors} error(s) in the guides above; the existing index was not changed.", err=True
        )
        return 1
    except KBError as exc:
        click.echo(f"Build failed: {exc.message}; the previous index is still live and unchanged.", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo(
            "Build interrupted; the previous index is still live and unchanged. Run the build again to finish it.",
            err=True,
        )
        return 130
    except OSError as exc:
        click.echo(
            "Build failed writing the index "
            f"({exc.strerror or exc}{': ' + exc.filename if getattr(exc, 'filename', None) else ''}); "
            "the previous index is still live and unchanged. Free some space or fix permissions and run the "
            "build again.",
            err=True,
        )
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for p in report.warnings:
        click.echo(p.format(), err=True)
    if as_json:
        click.echo(
            json.dumps({**report.as_dict(), "total_seconds": round(time.perf_counter() - started, 3)}, default=str)
        )
    else:
        click.echo(report.summary())
    _prepare_query_encoder(embedder, as_json)
    return 0


def _prepare_query_encoder(embedder: SentenceTransformerEmbedder, as_json: bool) -> None:
    """Export the model for fast query encoding the first time a build sees it (a few seconds, once)."""
    folder, seconds = embedder.prepare_query_encoder()
    if not seconds:
        return
    if folder is not None:
        message = (
            f"Exported the query encoder to ONNX in {seconds:.1f} s (once per model): searches encode queries faster."
        )
    else:
        message = "Could not export the query encoder to ONNX; searches will encode queries with sentence-transformers."
    click.echo(message, err=as_json)


def build_options(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")(f)
    f = click.option("--quiet", is_flag=True, help="No progress bar.")(f)
    f = click.option(
        "--if-stale", is_flag=True, help="Build only when the index is missing or older than the content."
    )(f)
    f = click.option("--full", is_flag=True, help="Re-embed and rewrite everything.")(f)
    f = click.option("--model", default=None, help="Model name or local path (default: KB_MODEL).")(f)
    f = click.option("--index", "index_dir", default=None, help="Index folder (default: KB_INDEX_DIR).")(f)
    f = click.option("--content", "content_dir", default=None, help="Content folder (default: KB_CONTENT_DIR).")(f)
    return f


def _build(content_dir, index_dir, model, full, if_stale, quiet, as_json):
    """Build or update the search index from the guides."""
    s = _settings()
    code = run_build(
        content_dir or s["KB_CONTENT_DIR"],
        index_dir or s["KB_INDEX_DIR"],
        model or s["KB_MODEL"],
        full,
        if_stale,
        quiet,
        as_json,
        s["KB_TORCH_THREADS"],
        s["KB_KEEP_GENERATIONS"],
    )
    sys.exit(code)


build_main = click.command("build")(build_options(_build))


@click.group("kb", cls=AppGroup)
def kb_cli():
    """The Year Above: build, check and inspect the knowledge base."""


kb_cli.command("build")(build_options(_build))


@kb_cli.command("status")
def status_cmd():
    """Say whether the index is built and up to date with the content."""
    s = _settings()
    st = index_status(s["KB_CONTENT_DIR"], s["KB_INDEX_DIR"])
    if not st.built:
        click.echo(f"No usable index ({st.reason}). Run: {BUILD_COMMAND}")
        sys.exit(1)
    click.echo(f"Live generation {st.generation}: {st.reason}.")
    for label, items in (("added", st.added), ("changed", st.changed), ("removed", st.removed)):
        if items:
            click.echo(f"  {label}: {', '.join(items)}")
    if st.stale:
        click.echo(f"Run: {BUILD_COMMAND}")
        sys.exit(1)


def run_check(
    content: str,
    index: str,
    model: str,
    paths: tuple[str, ...],
    fmt: str,
    strict: bool,
    changed_only: bool,
    base: str | None,
    stale_after: int,
    duplicates: bool,
    threshold: float,
    today: dt.date | None,
    threads: int = 0,
) -> int:
    """Check the guides; print one `path:line:col: level: message (fix: ...)` line per problem. Returns exit code."""
    changed = None
    if changed_only:
        try:
            changed = changed_files(content, base)
        except KBError as exc:
            click.echo(f"Cannot tell what changed ({exc.message}); checking every guide instead.", err=True)
    options = CheckOptions(
        today=today, stale_after_days=stale_after, strict=strict, duplicates=duplicates, duplicate_threshold=threshold
    )
    embedder = make_encoder(model, index, threads=threads) if duplicates else None
    try:
        report = check_content(
            content,
            paths=paths or None,
            changed=changed,
            options=options,
            embedder=embedder,
            cache_dir=Path(index) / ".check-cache",
        )
    except ContentError as exc:
        for p in exc.problems:
            click.echo(p.format())
        return 1
    for note in report.notes:
        click.echo(note, err=True)
    click.echo(format_report(report, fmt))
    return report.exit_code


def check_options(f):
    f = click.option(
        "--today",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        default=None,
        help="Judge dates as of this day (default: KB_TODAY, else today).",
    )(f)
    f = click.option("--model", default=None, help="Model for the near-duplicate check (default: KB_MODEL).")(f)
    f = click.option(
        "--threshold",
        type=click.FloatRange(0.5, 1.0),
        default=DUPLICATE_THRESHOLD,
        show_default=True,
        help="Similarity at which two sections are near-duplicates.",
    )(f)
    f = click.option("--no-duplicates", is_flag=True, help="Skip the near-duplicate check (no model needed).")(f)
    f = click.option(
        "--stale-after",
        type=click.IntRange(1, 3650),
        default=None,
        help="Days after last_reviewed a guide is stale (default: KB_STALE_AFTER_DAYS).",
    )(f)
    f = click.option(
        "--base", default=None, help=f"Git ref --changed-only compares with (default: {default_base()}, else main)."
    )(f)
    f = click.option(
        "--changed-only",
        is_flag=True,
        help="Report on guides changed since --base (errors are still reported everywhere).",
    )(f)
    f = click.option("--strict", is_flag=True, help="Stale guides are errors, not warnings.")(f)
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json", "github"]),
        default="text",
        show_default=True,
        help="github adds workflow annotations.",
    )(f)
    f = click.option(
        "--index",
        "index_dir",
        default=None,
        help="Index folder; section embeddings are cached in its .check-cache (default: KB_INDEX_DIR).",
    )(f)
    f = click.option("--content", "content_dir", default=None, help="Content folder (default: KB_CONTENT_DIR).")(f)
    f = click.argument("paths", nargs=-1, type=click.Path())(f)
    return f


def _check(
    paths, content_dir, index_dir, fmt, strict, changed_only, base, stale_after, no_duplicates, threshold, model, today
):
    """Check guides for everything the build relies on and more: front matter, headings, links,
    glossary, staleness and near-duplicate sections. Exit status 0 when there are no errors."""
    s = _settings()
    code = run_check(
        content_dir or s["KB_CONTENT_DIR"],
        index_dir or s["KB_INDEX_DIR"],
        model or s["KB_MODEL"],
        tuple(paths),
        fmt,
        strict,
        changed_only,
        base,
        stale_after or s["KB_STALE_AFTER_DAYS"],
        not no_duplicates,
        threshold,
        today.date() if today else clock.today(s["KB_TODAY"]),
        s["KB_TORCH_THREADS"],
    )
    sys.exit(code)


check_main = click.command("check")(check_options(_check))
kb_cli.command("check")(check_options(_check))


def _verify(content_dir, index_dir, model, as_json):
    """Check the live index: checksums, counts, model and dimension, cache, and which guides are newer.

    Exit status: 0 healthy and up to date, 1 missing or damaged, 2 healthy but behind the content.
    """
    from kb.tools.verify import verify_index

    s = _settings()
    v = verify_index(index_dir or s["KB_INDEX_DIR"], content_dir or s["KB_CONTENT_DIR"], model or s["KB_MODEL"])
    click.echo(json.dumps(v.as_dict(), indent=2) if as_json else v.format())
    sys.exit(v.exit_code)


def verify_options(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")(f)
    f = click.option("--model", default=None, help="Model the site searches with (default: KB_MODEL).")(f)
    f = click.option("--index", "index_dir", default=None, help="Index folder (default: KB_INDEX_DIR).")(f)
    f = click.option("--content", "content_dir", default=None, help="Content folder (default: KB_CONTENT_DIR).")(f)
    return f


verify_main = click.command("verify")(verify_options(_verify))
kb_cli.command("verify")(verify_options(_verify))


def format_search_report(r: dict, store_url: str, retention_days: int) -> str:
    """The content-gap report as text: what students search for and what they do not find."""
    t = r["totals"]
    pct = lambda a, b: f"{100 * a / b:.0f}%" if b else "-"  # noqa: E731
    out = [
        f"Search report, last {r['days']} days (since {r['since'][:10]}); database {store_url}; rows kept "
        f"{retention_days} days.",
        f"{t['searches']} searches, {t['distinct_queries']} distinct queries; "
        f"{t['zero_result_searches']} with no results ({pct(t['zero_result_searches'], t['searches'])}); "
        f"{t['searches_with_click']} followed by a click ({pct(t['searches_with_click'], t['searches'])}).",
    ]

    def section(title: str, rows: list, fmt, empty: str) -> None:
        out.append("")
        out.append(title)
        if not rows:
            out.append(f"  ({empty})")
        for row in rows:
            out.append("  " + fmt(row))

    section(
        "Top queries (searches, average guides found, searches with a click):",
        r["top_queries"],
        lambda x: (
            f"{x['searches']:>5}  {x['avg_results'] if x['avg_results'] is not None else '-':>5}  "
            f"{x['clicked']:>4}  {x['query']}"
        ),
        "no searches recorded",
    )
    section(
        "Zero-result queries: nothing in the guides answers these (write a guide, or add a synonym to glossary.yml):",
        r["zero_results"],
        lambda x: f"{x['searches']:>5}  {x['query']}   (last {x['last']})",
        "none",
    )
    section(
        "Queries with results but no click: the results did not look like the answer:",
        r["no_click"],
        lambda x: f"{x['searches']:>5}  {x['query']}   ({x['results']} guides found)",
        "none",
    )
    section(
        "Clicked guides:",
        r["clicked_guides"],
        lambda x: f"{x['clicks']:>5}  {x['slug']}  ({x['title']})",
        "no clicks recorded",
    )
    section(
        "Guides never clicked from a search in this period:",
        r["never_clicked"],
        lambda x: f"{x['slug']}  ({x['title']})",
        "every guide was clicked at least once",
    )

    def fb(x: dict) -> str:
        line = f"{x['no']:>3} no {x['yes']:>3} yes  {x['slug']}  ({x['title']})"
        for c in x["comments"]:
            line += f"\n{'':>16}“{c[:200]}”"
        return line

    section('Guides by negative feedback ("Was this helpful?"):', r["feedback"], fb, "no feedback yet")

    def gap(x: dict) -> str:
        line = f"{x['asked']:>5}  {x['question']}   (not covered {x['not_covered']}, related {x['related']})"
        others = [f"“{w['query']}” ({w['n']})" for w in x["wordings"][1:6]]
        if others:
            line += f"\n{'':>7}also asked as: " + ", ".join(others)
        if x["closest"]:
            line += f"\n{'':>7}closest guide: {x['closest']['slug']} ({x['closest']['title']})"
        return line + f"\n{'':>7}start it: {x['command']}"

    if "unanswered" in r:
        section(
            "Questions we could not answer (similar questions grouped, most asked first; searches judged related "
            "or not covered):",
            r["unanswered"],
            gap,
            "none: every recorded question was answered",
        )
    if r.get("unanswered_note"):
        out.append(f"  ({r['unanswered_note']})")
    return "\n".join(out)


@kb_cli.command("report")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650), help="Period to report on.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="Rows per list.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report_cmd(days, limit, as_json):
    """Content gaps: top, zero-result and unclicked queries, never-clicked guides, negative feedback."""
    from kb.service import KnowledgeBase
    from kb.store import Store, database_url, redact_url

    s = _settings()
    store = Store(
        database_url(s["KB_DATABASE_URL"], s["KB_INDEX_DIR"]), s["KB_ANALYTICS_RETENTION_DAYS"], s["KB_TODAY"]
    )
    knowledge = KnowledgeBase(s)  # the model loads only if a question went unanswered
    try:
        purged = store.purge()
        report = knowledge.search_report(store, days=days, limit=limit)
    except StoreError as exc:  # a clear message, not a traceback
        click.echo(f"Cannot read the analytics database {redact_url(store.url)}: {exc.message[:300]}", err=True)
        sys.exit(1)
    finally:
        store.dispose()
    if report.get("unanswered_note"):
        click.echo(f"note: unanswered questions {report['unanswered_note']}", err=True)
    if as_json:
        click.echo(json.dumps({"ok": True, **report, "purged": purged}, indent=2, default=str))
    else:
        click.echo(format_search_report(report, redact_url(store.url), store.retention_days))
