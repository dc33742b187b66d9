"""Cursor pagination (AIP-158): an opaque page_token encodes the last item's sort key."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypedDict, TypeVar, TypeVarTuple

from fastapi import Request, Response
from sqlalchemy import Select, and_, or_

from app.db.models import Dataset, Job
from app.errors import invalid


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str


def encode_cursor(created_at: datetime, ident: str) -> str:
    raw = json.dumps([created_at.isoformat(), ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# A token is base64 of ["<iso time>", "<id>"]: about 100 characters. A longer one is
# refused before it is parsed (deeply nested JSON must not reach the parser's
# recursion), and anything but that flat pair after.
MAX_TOKEN_CHARS = 256


def decode_cursor(token: str | None) -> Cursor | None:
    if not token:
        return None
    problem = invalid(
        "page_token", "Invalid page token; use the next_page_token of a previous page."
    )
    if len(token) > MAX_TOKEN_CHARS:
        raise problem
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, str) and "\x00" not in v for v in value)
        ):
            raise problem
        created, ident = value
        return Cursor(datetime.fromisoformat(created), ident)
    except (ValueError, TypeError, RecursionError) as exc:
        raise problem from exc


def clamp_page_size(size: int | None, default: int, maximum: int) -> int:
    if size is None:
        return default
    return max(1, min(size, maximum))


def next_link(request: Request, token: str | None) -> dict[str, str]:
    """The Link: rel="next" header for a page, if there is a next page."""
    if token is None:
        return {}
    url = request.url.include_query_params(page_token=token)
    return {"Link": f'<{url}>; rel="next"'}


class Keyed(Protocol):
    """A row in a page: its sort key."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> str: ...


RowT = TypeVar("RowT", bound=Keyed)
ViewT = TypeVar("ViewT")
Columns = TypeVarTuple("Columns")


class Page(TypedDict, Generic[ViewT]):
    items: list[ViewT]
    next_page_token: str | None


def newest_first(
    query: Select[*Columns], model: type[Dataset | Job], cursor: Cursor | None, size: int
) -> Select[*Columns]:
    """Keyset pagination over (created_at, id), newest first; fetches one extra row to
    know whether there is a next page."""
    if cursor is not None:
        query = query.where(
            or_(
                model.created_at < cursor.created_at,
                and_(model.created_at == cursor.created_at, model.id < cursor.id),
            )
        )
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(size + 1)


def next_token(rows: Sequence[Keyed], size: int) -> str | None:
    """The page_token of the page after the first ``size`` of ``rows`` (fetched with one
    row more by newest_first), or None when that was the last page."""
    if len(rows) <= size:
        return None
    last = rows[size - 1]
    return encode_cursor(last.created_at, last.id)


def page_body(
    request: Request,
    response: Response,
    rows: Sequence[RowT],
    size: int,
    view: Callable[[RowT], ViewT],
) -> Page[ViewT]:
    """The list body (items, next_page_token) and its Link: rel="next" header."""
    token = next_token(rows, size)
    response.headers.update(next_link(request, token))
    return {"items": [view(row) for row in rows[:size]], "next_page_token": token}
