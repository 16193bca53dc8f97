"""The bounds of a value every built-in adapter can write: the one gate :func:`parse_threat` applies.

A threat from the API is refused (skipped, counted as ``skipped_invalid``, logged with its
id) when any of these does not hold, so no adapter ever sees a value it cannot represent:

- a time (``firstPublished``, ``lastPublished``, ``firstDate``, ``lastDate``,
  ``confirmedDate``; epoch milliseconds) lies from 1970-01-01 to 9999-12-31 (Python's
  ``datetime``, used by the dated layouts, STIX and CSV lists, ends there);
- an id fits a signed 64-bit integer (SQLite's INTEGER);
- its text can be encoded as UTF-8 (no lone surrogate from a ``\\udXXX`` escape);
- it is nested at most :data:`MAX_DEPTH` levels deep (objects and arrays; a real threat has
  about 6), so no encoder or walker ever meets Python's recursion limit.

Nesting is measured on the JSON text of a whole answer while it is decoded
(:mod:`phishme_intel.client.jsontext`), where it costs little; a threat found too deep, or one the
decoder cannot take (a number with more than 4,300 digits, nesting past the interpreter's
limit) arrives at :func:`parse_threat` as an :class:`Unreadable` in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Deepest nesting of objects and arrays accepted inside one threat.
MAX_DEPTH = 32
#: 9999-12-31T23:59:59.999Z in epoch milliseconds: the last instant a ``datetime`` can hold.
LATEST_TIME_MS = 253_402_300_799_999


@dataclass(frozen=True)
class Unreadable:
    """Stands in for a threat the decoder could not or would not take; ``reason`` says why."""

    reason: str


def is_time(value: Any) -> bool:
    """Whether ``value`` is epoch milliseconds from 1970 to 9999-12-31."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LATEST_TIME_MS


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` (decoded JSON) nests objects and arrays more than ``limit`` levels deep.

    Level by level, without recursion; used for threats handed over decoded (no JSON text).
    """
    level, depth = [value], 0
    while level:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            return False
        depth += 1
        if depth > limit:
            return True
        level = [child for item in containers for child in (item.values() if isinstance(item, dict) else item)]
    return False
