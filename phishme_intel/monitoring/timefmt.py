"""Times and durations as the status file, ``--status`` and the progress line show them."""

from __future__ import annotations

import datetime as dt


def iso(epoch: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the millisecond."""
    return dt.datetime.fromtimestamp(round(epoch, 3), dt.timezone.utc).isoformat(timespec="milliseconds")


def duration(seconds: float) -> str:
    """A duration for a person: ``40 s``, ``12 min``, ``3 h 2 min``, ``2 d 3 h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"
