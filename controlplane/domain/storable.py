"""What every store can keep, checked at the edge the same way on SQLite and PostgreSQL.

Input that no store can ever hold must be refused with a 4xx naming the field, never
answered 503 (a sender retries a 503 forever): PostgreSQL refuses NUL in text and a lone
UTF-16 surrogate is not encodable as UTF-8 (SQLite would store what PostgreSQL refuses, so
both are refused on both); a time whose conversion to UTC leaves Python's years 1..9999
cannot be stored; ids above a signed 64-bit integer cannot be looked up; a bounded column
cannot hold a longer value. Pure checks, usable as pydantic types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

#: The largest id or offset a store can hold (a signed 64-bit integer).
MAX_INT = 2**63 - 1


def storable_text(value: str) -> str:
    """`value`, if every store can keep it: no NUL character, valid UTF-8 once encoded."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone UTF-16 surrogate)") from None
    return value


#: White space as JSON Schema (ECMA-262) counts it: what "only spaces" means for required
#: comments, so that the API's own document and its validation agree.
SPACES = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
#: The JSON-schema pattern of required text: at least one character that is not a space.
WORDS = "\\S"


def blank(value: str) -> bool:
    """Nothing but white space (ECMA-262's)."""
    return not value.strip(SPACES)


def storable_time(value: datetime) -> datetime:
    """`value`, if it can be converted to UTC and stored."""
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of range once converted to UTC (years 1 to 9999)") from None
    return value


#: The JSON-schema face of `storable_text` (the validator says it better than a pattern would).
NO_NUL = "^[^\\u0000]*$"
StoredText = Annotated[
    str, AfterValidator(storable_text), Field(json_schema_extra={"pattern": NO_NUL})
]
StoredTime = Annotated[AwareDatetime, AfterValidator(storable_time)]
StoredInt = Annotated[int, Field(le=MAX_INT)]
