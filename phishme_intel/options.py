"""Typed options: how one ``key = value`` line of config.ini becomes a Python value.

A section is described by a tuple of :class:`Option`; :func:`parse_section` turns the raw
strings of that section into a dict of values and appends one readable problem per bad
value to a shared list, so a whole config file is checked before anything is reported.
Adapters describe their own ``[integration_<name>]`` section with the same parsers.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

REQUIRED: Any = object()

_USERINFO = re.compile(r"(//[^/?#@]*?:)[^/?#]*@")
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
            raise ValueError(f"is not a valid URL: {without_password(value)!r}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"must be a {' or '.join(schemes)} URL with a host, not {without_password(value)!r}")
        return value.rstrip("/")

    return parse


def without_password(address: str) -> str:
    """``address`` with the password of its ``user:password@`` part (if any) shown as ``***``."""
    return _USERINFO.sub(r"\1***@", address)


def url_password(address: str | None) -> str | None:
    """The password inside a ``scheme://user:password@host`` URL, or None."""
    match = _USERINFO.search(address or "")
    if match is None:
        return None
    password = address[match.end(1):match.end() - 1] if address else ""
    return password or None


def cleartext_problem(address: str, what: str) -> str | None:
    """Why sending ``what`` to ``address`` would expose it: an ``http://`` URL to another machine.

    Loopback (``localhost``, 127.0.0.0/8, ``::1``) is fine: the traffic never leaves the
    machine. Host names are not resolved: only those literals count as loopback.
    """
    parts = urlsplit(address)
    if parts.scheme != "http":
        return None
    host = parts.hostname or ""
    try:
        if host == "localhost" or ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"is plain http:// to {host}, which would send {what} unencrypted; use https://"


def listen_address(raw: str) -> tuple[str, int]:
    """``HOST:PORT`` to serve HTTP on (``[::1]:PORT`` for IPv6; port 0 picks a free one)."""
    value = raw.strip()
    host, colon, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be HOST:PORT such as 127.0.0.1:9464, not {value!r}")
    return host, int(port)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def interval(raw: str) -> float:
    """A time between runs: a number with a unit, ``30s``, ``15m``, ``1h``, ``1d`` (1 s to 7 d)."""
    value = raw.strip().lower()
    unit = _UNITS.get(value[-1:])
    try:
        seconds = float(value[:-1]) * unit if unit else None
    except ValueError:
        seconds = None
    if seconds is None or not 1 <= seconds <= 7 * 86400:
        raise ValueError(f"must be a number and a unit (s, m, h, d) such as 15m, from 1s to 7d, not {raw!r}")
    return seconds


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


DATE_FORMS = "2026-10-01, 2026-10-01T08:00:00Z, 2026-10-01 10:00+02:00 or 1 October 2026"
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.IGNORECASE,
)
_MONTH = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)\d{4}(?!\d)")
_NUMERIC = re.compile(r"(?<!\d)\d{1,2}[./-]\d{1,2}[./-]\d{2,4}(?!\d)")
_ZONE_NAME = re.compile(r"\d\s*[A-Z]{2,5}$", re.IGNORECASE)


def instant(raw: str) -> dt.datetime:
    """A date, or a date and time with ``Z`` or an offset, that cannot be misread; not in the future.

    ISO 8601 (``2026-10-01``, ``2026-10-01T08:00:00Z``, ``2026-10-01 10:00+02:00``; a date
    alone is midnight UTC) or a whole date with the month by name (``1 October 2026``).
    Numeric forms whose day and month could be swapped (``01.10.2026``), time zone names
    (``EST``: several zones share one), a time without a zone and partial dates are refused.
    """
    value = raw.strip()
    parsed = _iso(value) if _ISO.fullmatch(value) else _named_month(value)
    if parsed > dt.datetime.now(dt.timezone.utc):
        raise ValueError(f"is in the future: {value!r}")
    if parsed.year < 2000:
        raise ValueError(f"is before the year 2000: {value!r}")
    return parsed


def _iso(value: str) -> dt.datetime:
    year, month, day, hour, minute, second, fraction, zone = _ISO.fullmatch(value).groups()
    if hour is not None and zone is None:
        raise ValueError(f"gives a time without a time zone: {value!r}; add Z (UTC) or an offset such as +02:00")
    offset = dt.timezone.utc
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "").ljust(4, "0")
        sign = -1 if zone[0] == "-" else 1
        offset = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "0").ljust(6, "0")), tzinfo=offset,
        )
    except ValueError as exc:
        raise ValueError(f"is not a valid date ({exc}): {value!r}") from None


def _named_month(value: str) -> dt.datetime:
    """A whole date with the month by name; every part given, nothing filled in from a default."""
    if not (_MONTH.search(value) and _YEAR.search(value)):
        raise ValueError(_why_not(value))
    from dateutil import parser as date_parser  # here: 10 ms to import, and only such dates need it

    try:
        one, other = (date_parser.parse(value, default=d) for d in (_DEFAULTS[0], _DEFAULTS[1]))
    except (ValueError, OverflowError):
        raise ValueError(_why_not(value)) from None
    given_time = (one.time(), other.time()) != (_DEFAULTS[0].time(), _DEFAULTS[1].time())
    if one.date() != other.date() or given_time or one.tzinfo is not None:
        raise ValueError(f"is not a whole date: {value!r}; write {DATE_FORMS}")
    return dt.datetime(one.year, one.month, one.day, tzinfo=dt.timezone.utc)


_DEFAULTS = (dt.datetime(2001, 1, 1), dt.datetime(2002, 2, 2, 1, 1, 1))


def _why_not(value: str) -> str:
    if _ZONE_NAME.search(value):
        return f"names a time zone by abbreviation, which several zones share: {value!r}; write {DATE_FORMS}"
    if _NUMERIC.search(value):
        return f"is ambiguous (is it day.month or month.day?): {value!r}; write {DATE_FORMS}"
    return f"is not a date in a form that cannot be misread: {value!r}; write {DATE_FORMS}"


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
