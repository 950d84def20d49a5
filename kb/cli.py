"""`flask kb ...` commands and the scripts' entry points: thin wrappers over the library."""

from __future__ import annotations

import json
import os
import sys

import click
from flask.cli import AppGroup

from kb import config
from kb.build import BUILD_COMMAND, build_index, index_status
from kb.embedding import SentenceTransformerEmbedder
from kb.errors import ContentError, KBError


def _settings() -> dict:
    """Settings from the Flask app when inside one, else from KB_* environment variables."""
    from flask import current_app

    try:
        return {s.name: current_app.config[s.name] for s in config.SETTINGS}
    except RuntimeError:
        return config.validate({k: v for k, v in os.environ.items() if k in config.BY_NAME})


def run_build(content: str, index: str, model: str, full: bool, if_stale: bool, quiet: bool, as_json: bool, threads: int = 0) -> int:
    """Build the index; print every content problem as path:line:col and a summary. Returns exit code."""
    if if_stale:
        st = index_status(content, index)
        if st.built and not st.stale:
            click.echo(f"Index {st.generation} is up to date with {content}.")
            return 0
        click.echo(f"Building the index: {st.reason}.")
    embedder = SentenceTransformerEmbedder(model, threads=threads)
    try:
        report = build_index(content, index, embedder, full=full, progress=not quiet and not as_json)
    except ContentError as exc:
        for p in exc.problems:
            click.echo(p.format(), err=True)
        errors = sum(p.level == "error" for p in exc.problems)
        click.echo(f"Build stopped: {errors} error(s) in the guides above; the existing index was not changed.", err=True)
        return 1
    except KBError as exc:
        click.echo(f"Build failed: {exc.message}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("Build interrupted; the previous index is still live and unchanged.", err=True)
        return 130
    except OSError as exc:
        click.echo(f"Build failed writing the index ({exc.strerror or exc}); the previous index is still live and unchanged.", err=True)
        return 1
    for p in report.warnings:
        click.echo(p.format(), err=True)
    if as_json:
        click.echo(json.dumps(report.as_dict(), default=str))
    else:
        click.echo(report.summary())
    return 0


def build_options(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")(f)
    f = click.option("--quiet", is_flag=True, help="No progress bar.")(f)
    f = click.option("--if-stale", is_flag=True, help="Build only when the index is missing or older than the content.")(f)
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
