"""One page of rows, newest first, and how many match in all: every listing endpoint's query."""

from __future__ import annotations

from typing import Any, TypeVar, get_args

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

PageT = TypeVar("PageT", bound=BaseModel)


def newest_page(
    session: Session,
    query: Select[Any],
    key: Any,
    where: list[Any],
    limit: int,
    offset: int,
    page: type[PageT],
) -> PageT:
    """Rows of `query` matching `where`, by `key` descending, as a `page` (data, count, limit,
    offset); each row becomes the page's item model, the type of its `data` list."""
    filtered = query.where(*where)
    total = session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
    rows = session.scalars(filtered.order_by(key.desc()).limit(limit).offset(offset)).all()
    (item,) = get_args(page.model_fields["data"].annotation)
    return page(
        data=[item.model_validate(r) for r in rows], count=total, limit=limit, offset=offset
    )
