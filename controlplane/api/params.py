"""Path and query parameters every route shares, bounded to what the store can look up: ids
and offsets within a signed 64-bit integer, times that convert to UTC. (Text parameters
cannot hold NUL: `errors.refuse_nul` turns such a URL away before any route.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime

from controlplane.domain.storable import MAX_INT, storable_time

Id = Annotated[int, Path(ge=1, le=MAX_INT)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]
Limit = Annotated[int, Query(ge=1, le=500)]
IncidentFilter = Annotated[int | None, Query(ge=1, le=MAX_INT)]
Moment = Annotated[AwareDatetime, AfterValidator(storable_time)]
