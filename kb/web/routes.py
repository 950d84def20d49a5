"""Views: HTML pages and the JSON API, each built from the same dict."""

from __future__ import annotations

from urllib.parse import quote_plus

from flask import jsonify, render_template, request

from kb.errors import NotFoundError
from kb.web import bp, kb
from kb.web.analytics import analytics


def _categories():
    snap = kb().library.snapshot()
    counts = {c: 0 for c in snap.taxonomy.categories}
    for g in snap.guides:
        counts[g.category] = counts.get(g.category, 0) + 1
    return [
        {
            "slug": c.slug,
            "title": c.title,
            "description": c.description,
            "count": counts.get(c.slug, 0),
            "url": f"/categories/{c.slug}",
        }
        for c in snap.taxonomy.categories.values()
    ]


def _guide_list(guides):
    return [g.as_dict() for g in sorted(guides, key=lambda g: g.title.casefold())]


def _guide_data(slug: str) -> dict:
    k = kb()
    g = k.library.guide(slug)
    rendered = k.library.render(g)
    snap = k.library.snapshot()
    related = [
        {"slug": s, "title": t, "url": f"/guides/{s}", "summary": snap.by_slug[s].summary}
        for s, t in k.related(slug, 4)
        if s in snap.by_slug
    ]
    today = k.today()
    data = g.as_dict()
    data.update(
        html=rendered.html,
        toc=[{"level": lvl, "anchor": a, "title": t} for lvl, a, t in rendered.headings],
        category_title=snap.taxonomy.categories.get(g.category).title
        if g.category in snap.taxonomy.categories
        else g.category,
        edit_url=k.edit_url(g),
        related=related,
        cycle_passed=g.cycle_passed(today),
        stale=g.days_since_review(today) > k.settings["KB_STALE_AFTER_DAYS"],
        days_since_review=g.days_since_review(today),
        search_behind=k.search_behind(g),
    )
    return data


def _search_data(source: str) -> dict:
    if request.headers.get("X-Requested-With") == "live-search" or request.args.get("live") == "1":
        source = "live"  # as-you-type: not recorded unless a result is followed
    k = kb()
    search = k.search_request(request.args)
    response = k.search(search)
    data = response.as_dict()
    data["limit"] = search.limit
    data["search_id"] = analytics().log_search(search, response, source)
    return data


@bp.get("/")
def home():
    snap = kb().library.snapshot()
    recent = sorted(snap.guides, key=lambda g: (g.last_reviewed, g.title), reverse=True)[:6]
    return render_template(
        "home.html", categories=_categories(), recent=[g.as_dict() for g in recent], total=len(snap.guides)
    )


@bp.get("/search")
def search_page():
    k = kb()
    q = request.args.get("q", "") or ""
    tags = sorted(k.library.snapshot().taxonomy.tags)
    if not q.strip():
        return render_template("search.html", data=None, q="", categories=_categories(), tags=tags, params=request.args)
    data = _search_data("page")
    issue_url = (
        f"{k.settings['KB_REPO_URL'].rstrip('/')}/issues/new"
        f"?title={quote_plus('Guide request: ' + q[:150])}&labels=guide-request"
    )
    return render_template(
        "search.html", data=data, q=q, categories=_categories(), tags=tags, params=request.args, issue_url=issue_url
    )


@bp.get("/guides")
def guides_page():
    snap = kb().library.snapshot()
    return render_template(
        "list.html",
        heading="All guides",
        description=f"{len(snap.guides)} guides by students and new doctors.",
        guides=_guide_list(snap.guides),
    )


@bp.get("/guides/<slug>")
def guide_page(slug: str):
    return render_template("guide.html", g=_guide_data(slug))


@bp.get("/categories/<slug>")
def category_page(slug: str):
    snap = kb().library.snapshot()
    cat = snap.taxonomy.categories.get(slug)
    if cat is None:
        raise NotFoundError(f"no category called '{slug[:80]}'")
    guides = [g for g in snap.guides if g.category == slug]
    return render_template(
        "list.html", heading=cat.title, description=cat.description, guides=_guide_list(guides), category=slug
    )


@bp.get("/tags")
def tags_page():
    snap = kb().library.snapshot()
    counts: dict[str, int] = {}
    for g in snap.guides:
        for t in g.tags:
            counts[t] = counts.get(t, 0) + 1
    return render_template("tags.html", tags=sorted(counts.items()))


@bp.get("/tags/<tag>")
def tag_page(tag: str):
    snap = kb().library.snapshot()
    if tag not in snap.taxonomy.tags:
        raise NotFoundError(f"no tag called '{tag[:80]}'")
    guides = [g for g in snap.guides if tag in g.tags]
    return render_template(
        "list.html", heading=f"Tagged “{tag}”", description=f"{len(guides)} guides", guides=_guide_list(guides), tag=tag
    )


# ---- JSON API -----------------------------------------------------------------------------------
@bp.get("/api/search")
def api_search():
    return jsonify(_search_data("api"))


@bp.get("/api/guides")
def api_guides():
    snap = kb().library.snapshot()
    return jsonify(
        {"ok": True, "total": len(snap.guides), "guides": _guide_list(snap.guides), "categories": _categories()}
    )


@bp.get("/api/guides/<slug>")
def api_guide(slug: str):
    return jsonify({"ok": True, "guide": _guide_data(slug)})


@bp.get("/healthz")
def healthz():
    """Index and model health; `analytics_events_lost` counts searches and clicks this worker could not record."""
    status = kb().status()
    status["analytics_events_lost"] = analytics().recorder.lost
    return jsonify(status), 200 if status["ok"] else 503
