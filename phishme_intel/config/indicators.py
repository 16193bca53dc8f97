"""``[indicators]``: what the indicator gate lets through, and what the run allow-lists.

``keep_private_ips`` keeps private IPv4 addresses (RFC 1918, CGNAT) as indicators;
``allowlist_file`` names a file of allow-list entries; ``warninglists`` adds MISP's warning
lists (the ``pymispwarninglists`` extra), those named by ``warninglist_names``. The settings
are checked when the config is loaded (every bad line of the allow-list file is a problem);
the allow-list itself is built by :func:`gate` when a run starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..models import Gate
from ..models.allowlist import DEFAULT_WARNINGLISTS, Allowlist, file_entries, warninglist_entries, warninglists_folder
from ..options import Option, boolean, path

SECTION = "indicators"
_SHOWN = 5


def names(raw: str) -> tuple[str, ...]:
    """A comma-separated list of MISP warning list names (their folder names, e.g. ``tranco10k``)."""
    found = tuple(dict.fromkeys(word.strip() for word in raw.split(",") if word.strip()))
    if not found or any("/" in word or word.startswith(".") for word in found):
        raise ValueError(f"must be a comma-separated list of MISP warning list names, not {raw!r}")
    return found


OPTIONS = (
    Option("keep_private_ips", boolean, False),
    Option("allowlist_file", path, None),
    Option("warninglists", boolean, False),
    Option("warninglist_names", names, DEFAULT_WARNINGLISTS),
)


@dataclass(frozen=True)
class IndicatorSettings:
    """``[indicators]``: private addresses kept or not, the allow-list file, the warning lists (empty: none)."""

    keep_private_ips: bool = False
    allowlist_file: str | None = None
    warninglists: tuple[str, ...] = ()


def settings(values: dict[str, Any], problems: list[str]) -> IndicatorSettings:
    """The section's parsed ``values`` checked: the allow-list file read, the warning lists found."""
    allowlist_file = values["allowlist_file"]
    if allowlist_file:
        problems.extend(f"[{SECTION}] allowlist_file: {problem}" for problem in _file_problems(allowlist_file))
    lists: tuple[str, ...] = (values["warninglist_names"] or ()) if values["warninglists"] else ()
    if lists:
        problems.extend(f"[{SECTION}] warninglist_names: {problem}" for problem in _list_problems(lists))
    return IndicatorSettings(bool(values["keep_private_ips"]), allowlist_file, lists)


def gate(settings: IndicatorSettings) -> Gate:
    """The run's gate: the allow-list file's entries and the warning lists' loaded.

    Raises OSError or ValueError when a file changed since the config was checked.
    """
    allowlist = Allowlist()
    if settings.allowlist_file:
        for _number, entry in file_entries(settings.allowlist_file):
            allowlist.add(entry)
    if settings.warninglists:
        for entry in warninglist_entries(settings.warninglists):
            allowlist.add(entry)  # entries of kinds the gate does not know (IPv6, phone numbers) are left out
    return Gate(settings.keep_private_ips, allowlist)


def _file_problems(allowlist_file: str) -> list[str]:
    try:
        entries = file_entries(allowlist_file)
    except OSError as exc:
        return [f"cannot read {allowlist_file}: {exc.strerror}"]
    except UnicodeDecodeError:
        return [f"{allowlist_file} is not UTF-8 text"]
    probe = Allowlist()
    bad = [f"line {number} ({entry!r})" for number, entry in entries if not probe.add(entry)]
    if not bad:
        return []
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return [f"{', '.join(bad[:_SHOWN])}{more} of {allowlist_file}: not a domain, IPv4 address or CIDR block, "
            f"hash, URL or e-mail address the indicator gate accepts"]


def _list_problems(lists: tuple[str, ...]) -> list[str]:
    try:
        folder = warninglists_folder()
    except ImportError as exc:
        return [str(exc)]
    unknown = [name for name in lists if not os.path.isfile(folder / name / "list.json")]
    if not unknown:
        return []
    return [f"no MISP warning list named {', '.join(unknown)} in {folder} (the names are its folder names)"]
