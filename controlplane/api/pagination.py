"""One page of rows, newest first, and how many match in all: every listing endpoint's query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def newest_first(
    session: Session, query: Select[Any], key: Any, where: list[Any], limit: int, offset: int
) -> tuple[list[Any], int]:
    """Rows of `query` matching `where`, by `key` descending, and the total that match."""
    filtered = query.where(*where)
    total = session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
    rows = session.scalars(filtered.order_by(key.desc()).limit(limit).offset(offset)).all()
    return list(rows), total
