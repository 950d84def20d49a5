"""The Year Above knowledge base: guides, index builds and hybrid search."""

from kb.errors import (
    ContentError,
    IndexMismatchError,
    IndexNotBuiltError,
    KBError,
    QueryError,
)

__all__ = [
    "ContentError",
    "IndexMismatchError",
    "IndexNotBuiltError",
    "KBError",
    "QueryError",
]
