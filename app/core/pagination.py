"""One way to page a list: bounded ``limit``/``offset`` query parameters and the page body.

Controllers annotate their parameters with ``Limit`` / ``Offset`` (or ``limit_type(n)`` for a
smaller maximum), so a 30-digit offset or a huge limit is a 400 ``validation_error`` before any
query runs (an unbounded offset used to reach asyncpg and fail as a 500). Services build the body
with ``paginate`` (or ``Page`` directly when they already know the total).

The kernel imports no feature: the page is generic over its item type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter

T = TypeVar("T")

MAX_LIMIT = 500
# Far beyond any real listing, well inside PostgreSQL's bigint: deep OFFSETs cost a scan each.
MAX_OFFSET = 1_000_000


def limit_type(maximum: int = MAX_LIMIT) -> Any:
    """An ``int`` query parameter ``limit`` in 1..maximum (for routes with a smaller cap)."""
    return Annotated[int, QueryParameter(ge=1, le=maximum, description=f"Page size, 1 to {maximum}.")]


Limit = limit_type(MAX_LIMIT)
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description=f"Items to skip, 0 to {MAX_OFFSET}.")]


class Page(msgspec.Struct, Generic[T]):
    """``{items, total, limit, offset}``: ``total`` counts every match, not just this page.

    Subclass it per listing (``class ChipPage(Page[ChipOut]): pass``) for a readable OpenAPI
    component name; ``Page[X]`` works too.
    """

    items: list[T]
    total: int
    limit: int
    offset: int

    def headers(self) -> dict[str, str]:
        """The paging facts as headers, for listings whose body stays a bare JSON array."""
        return {"X-Total-Count": str(self.total), "X-Limit": str(self.limit), "X-Offset": str(self.offset)}


P = TypeVar("P", bound="Page[Any]")


def total_from_page(returned: int, limit: int, offset: int) -> int | None:
    """The total implied by the page itself, or None when only a count can tell.

    A page shorter than ``limit`` that is non-empty (or is the first page) ends the list, so the
    total is ``offset + returned`` and the count query can be skipped. An empty page past the end
    tells nothing: the list may hold anything from 0 to ``offset`` items.
    """
    if returned < limit and (returned > 0 or offset == 0):
        return offset + returned
    return None


async def paginate(
    fetch_page: Callable[[int, int], Awaitable[Sequence[T]]],
    count: Callable[[], Awaitable[int]],
    limit: int,
    offset: int,
    *,
    page_type: type[P] = Page,  # type: ignore[assignment]  # (the default is Page itself)
) -> P:
    """Fetch one page, and count the matches only when the page cannot say how many there are.

    ``fetch_page(limit, offset)`` returns the items; ``count()`` returns the number of matches
    under the same filters. The total stays right past the last page (an empty page there still
    reports every match). ``page_type`` picks the page class (a ``Page`` subclass).
    """
    items = list(await fetch_page(limit, offset))
    total = total_from_page(len(items), limit, offset)
    if total is None:
        total = await count()
    return page_type(items=items, total=total, limit=limit, offset=offset)
