"""SearchRequest: one frozen search request, parsed and checked in one place, every message written once."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from kb.errors import QueryError

MODES = ("hybrid", "keyword", "semantic")
OFF = ("0", "false", "no", "off")


def _limit_error(max_limit: int, got: str) -> QueryError:
    return QueryError(f"parameter 'limit' must be a whole number from 1 to {max_limit}; got {got}", "limit")


@dataclass(frozen=True)
class SearchRequest:
    """What a reader asked for: the HTML page, the JSON API, the CLI and evaluation all search with one.

    Attributes:
        query: Free text as typed; "double quotes" require an exact phrase.
        limit: Maximum number of sections returned.
        mode: "hybrid", "keyword" or "semantic".
        category: Only guides of this category.
        tag: Only guides with this tag.
        spellcheck: Search likely corrections of unknown words instead of them (reported as
            did_you_mean with corrected=True); when off, a correction is only suggested.
    """

    query: str
    limit: int = 10
    mode: str = "hybrid"
    category: str | None = None
    tag: str | None = None
    spellcheck: bool = True

    @classmethod
    def from_args(
        cls,
        args: Mapping[str, Any],
        settings: Mapping[str, Any],
        categories: Collection[str] = (),
        tags: Collection[str] = (),
    ) -> SearchRequest:
        """Parse request parameters (`q`, `limit`, `mode`, `category`, `tag`, `spell`) and check them all.

        Args:
            args: The query string, e.g. `request.args`.
            settings: KB_DEFAULT_LIMIT, KB_MAX_LIMIT and KB_MAX_QUERY_LENGTH are read.
            categories: The categories a guide may have (the taxonomy's).
            tags: The tags a guide may have (the taxonomy's).

        Raises:
            QueryError: naming the first bad parameter and what is allowed.
        """
        max_limit = settings["KB_MAX_LIMIT"]
        raw_limit = args.get("limit", None)
        limit = settings["KB_DEFAULT_LIMIT"]
        if raw_limit not in (None, ""):
            text = str(raw_limit).strip()
            # isdecimal, not isdigit: int() refuses digits such as '²' that isdigit accepts
            if not text.isdecimal() or len(text) > 9:
                raise _limit_error(max_limit, f"'{text[:20]}'")
            limit = int(text)
        mode = (args.get("mode") or "hybrid").strip().lower()
        _check_mode(mode)
        category = (args.get("category") or "").strip() or None
        if category and category not in categories:
            raise QueryError(
                f"parameter 'category' must be one of {', '.join(categories)}; got '{category[:40]}'", "category"
            )
        tag = (args.get("tag") or "").strip() or None
        if tag and tag not in tags:
            raise QueryError(f"parameter 'tag' must be a tag listed at /tags; got '{tag[:40]}'", "tag")
        spellcheck = (args.get("spell") or "1").strip() not in OFF
        request = cls(args.get("q", "") or "", limit, mode, category, tag, spellcheck)
        request.check(settings["KB_MAX_QUERY_LENGTH"], max_limit)
        return request

    def check(self, max_query_length: int, max_limit: int) -> None:
        """Raise QueryError unless the query, mode and limit are within the site's limits."""
        query = self.query
        if not isinstance(query, str) or not query.strip():
            raise QueryError("parameter 'q' is required: type a question or a few words", "q")
        if not any(ch.isalnum() for ch in query):
            raise QueryError(
                "parameter 'q' has no letters or digits to search for: type a question or a few words", "q"
            )
        if len(query) > max_query_length:
            raise QueryError(f"parameter 'q' is {len(query)} characters long; the limit is {max_query_length}", "q")
        _check_mode(self.mode)
        if not 1 <= self.limit <= max_limit:
            raise _limit_error(max_limit, str(self.limit))

    @property
    def filters(self) -> dict[str, str | None]:
        return {"category": self.category, "tag": self.tag}


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise QueryError(f"parameter 'mode' must be one of {', '.join(MODES)}; got '{mode[:40]}'", "mode")
