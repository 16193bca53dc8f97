"""Typed options: how one ``key = value`` line of config.ini becomes a Python value.

A section is described by a tuple of :class:`Option`; :func:`parse_section` turns the raw
strings of that section into a dict of values and appends one readable problem per bad
value to a shared list, so a whole config file is checked before anything is reported.
Adapters describe their own ``[integration_<name>]`` section with the same parsers.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dateutil import parser as date_parser
from dateutil import tz

REQUIRED: Any = object()

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


@dataclass(frozen=True)
class Option:
    """One key of a section: its name, how to parse it, and its default (or REQUIRED)."""

    key: str
    parse: Callable[[str], Any]
    default: Any = None


def boolean(raw: str) -> bool:
    """``True``/``False`` in any of ConfigParser's spellings (yes/no, on/off, 1/0)."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"must be True or False, not {raw!r}")


def integer(low: int, high: int) -> Callable[[str], int]:
    """A whole number within ``[low, high]``."""

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be a whole number from {low} to {high}, not {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, not {value}")
        return value

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    """A decimal number within ``[low, high]``."""

    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number from {low:g} to {high:g}, not {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be a number from {low:g} to {high:g}, not {value:g}")
        return value

    return parse


def text(raw: str) -> str:
    """Any non-empty string (surrounding blanks removed)."""
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def secret(raw: str) -> str:
    """A password or token: taken as written, never echoed back in a message."""
    if not raw:
        raise ValueError("must not be empty")
    return raw


def choice(*allowed: str) -> Callable[[str], str]:
    """One of a fixed set of words, case-insensitive; returned in lower case."""

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {raw!r}")
        return value

    return parse


def url(*schemes: str) -> Callable[[str], str]:
    """An absolute URL with one of ``schemes`` and a host; a trailing slash is dropped."""

    def parse(raw: str) -> str:
        value = raw.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError(f"is not a valid URL: {value!r}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"must be a {' or '.join(schemes)} URL with a host, not {value!r}")
        return value.rstrip("/")

    return parse


def position(raw: str) -> str | None:
    """A stored updates-feed position: a UUID, or empty for none."""
    value = raw.strip()
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(
            f"must be a UUID such as 0b3c0c7e-8a4c-4a47-9c66-0d5e62d3a2b1, or empty, not {value!r}"
        ) from None


def instant(raw: str) -> dt.datetime:
    """A date and time python-dateutil understands; UTC when it names no zone; not in the future."""
    value = raw.strip()
    try:
        parsed = date_parser.parse(value)
    except (ValueError, OverflowError):
        raise ValueError(f"is not a date python-dateutil can read: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz.UTC)
    if parsed > dt.datetime.now(tz.UTC):
        raise ValueError(f"is in the future: {value!r}")
    if parsed.year < 2000:
        raise ValueError(f"is before the year 2000: {value!r}")
    return parsed


def epoch_seconds(raw: str) -> int | None:
    """A whole number of seconds since 1970 (a checkpoint written by this tool), or empty."""
    value = raw.strip()
    if not value:
        return None
    return integer(0, 2**40)(value)


def path(raw: str) -> str:
    """A file system path; ``~`` expanded. Relative paths are resolved by the caller."""
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return os.path.expanduser(value)


def parse_section(
    name: str,
    raw: Mapping[str, str] | None,
    options: Sequence[Option],
    problems: list[str],
    warnings: list[str] | None = None,
    base_dir: str = ".",
) -> dict[str, Any]:
    """Parse ``raw`` (a section's strings, or None if the section is absent) against ``options``.

    Returns every option's value (its default when absent or empty). Each bad or missing required
    value adds a problem naming ``[name] key``; a missing section with required keys adds one
    problem naming the section and those keys. Each unknown key adds a warning. Values of
    :func:`path` options, and their defaults, are resolved against ``base_dir``.
    """
    required = [option.key for option in options if option.default is REQUIRED]
    if raw is None and required:
        problems.append(f"[{name}]: the section is missing; it must set {', '.join(required)}")
    section_present = raw is not None
    raw = raw or {}
    values: dict[str, Any] = {}
    for option in options:
        if not raw.get(option.key, "").strip():
            if option.default is REQUIRED and section_present:
                problems.append(f"[{name}] {option.key}: is required")
            values[option.key] = None if option.default is REQUIRED else option.default
            continue
        try:
            values[option.key] = option.parse(raw[option.key])
        except ValueError as exc:
            problems.append(f"[{name}] {option.key}: {exc}")
            values[option.key] = None
    for option in options:
        if option.parse is path and values[option.key] is not None:
            values[option.key] = os.path.join(base_dir, os.path.expanduser(values[option.key]))
    if warnings is not None:
        known = {option.key for option in options}
        warnings.extend(f"[{name}] {key}: unknown key, ignored" for key in raw if key not in known)
    return values
