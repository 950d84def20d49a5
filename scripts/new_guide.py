#!/usr/bin/env python3
"""Start a new guide: python scripts/new_guide.py "Title" --category CATEGORY [--tag T ...] [--summary S].

Writes content/<category>/<slug>.md with complete front matter and the template's section prompts.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click  # noqa: E402

from kb import clock  # noqa: E402
from kb.cli import env_settings  # noqa: E402
from kb.errors import KBError  # noqa: E402
from kb.tools.scaffold import default_summary, new_guide  # noqa: E402


def _source(value: str) -> tuple[str, str]:
    title, sep, url = value.rpartition("|")
    if not sep:
        raise click.BadParameter(f"write it as \"Page title | https://...\", got '{value}'", param_hint="--source")
    return title.strip(), url.strip()


@click.command()
@click.argument("title")
@click.option("--category", required=True, help="The folder it goes in, e.g. placements (see content/taxonomy.yml).")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help="A tag from content/taxonomy.yml; repeat for more (default: the category's usual tags).",
)
@click.option("--summary", default=None, help="One or two sentences on what the guide answers.")
@click.option("--author", "authors", multiple=True, help='Your role, e.g. "F2 doctor" (not your name).')
@click.option(
    "--applies-to", default="evergreen", show_default=True, help="evergreen, or the cycle it describes, e.g. FP2027."
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    help='"Page title | https://..." you checked the facts against; repeat for more.',
)
@click.option("--slug", default=None, help="File name without .md (default: made from the title).")
@click.option("--content", "content_dir", default=None, help="Content folder (default: KB_CONTENT_DIR).")
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Date for last_reviewed (default: KB_TODAY, else today).",
)
@click.option("--force", is_flag=True, help="Overwrite a guide with the same file name.")
@click.option("--no-input", is_flag=True, help="Never ask questions; use the defaults.")
def main(title, category, tags, summary, authors, applies_to, sources, slug, content_dir, today, force, no_input):
    """Write content/<category>/<slug>.md from the guide template, ready to fill in."""
    settings = env_settings()
    content = Path(content_dir or settings["KB_CONTENT_DIR"])
    interactive = sys.stdin.isatty() and not no_input
    if interactive and summary is None:
        summary = click.prompt("In a sentence or two, what does the guide answer?", default=default_summary(title))
    if interactive and not authors:
        authors = (click.prompt("Your role (not your name), e.g. F2 doctor", default="Medical student"),)
    try:
        guide = new_guide(
            content,
            title,
            category,
            tags=list(tags) or None,
            summary=summary,
            authors=list(authors) or None,
            applies_to=applies_to,
            sources=[_source(s) for s in sources] or None,
            slug=slug,
            today=today.date() if today else clock.today(settings["KB_TODAY"]),
            overwrite=force,
        )
    except KBError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(1)
    try:
        shown = guide.path.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = guide.path
    click.echo(f"Wrote {shown}")
    click.echo("Next:")
    click.echo("  1. Replace every TODO with your own writing: keep headings as the questions students ask.")
    if guide.suggested_sources:
        click.echo(
            "  2. Check the summary and the suggested sources: keep the pages you checked, add the ones you used."
        )
    else:
        click.echo("  2. Check the summary and sources.")
    click.echo(f"  3. Preview it: make dev, then open http://127.0.0.1:5000/guides/{guide.slug}")
    click.echo(f"  4. Check it: python scripts/validate_content.py {shown}")
    click.echo("  5. Open a pull request (see CONTRIBUTING.md).")


if __name__ == "__main__":
    main()
