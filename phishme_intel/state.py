"""The sync's state, what a run did, and where the state is kept: ``[pm_api]`` in config.ini.

:class:`SyncState` is what the sync stored last time (the updates position, or a backfill in
progress); :class:`Report` is what one run did. :class:`ConfigCheckpoint` writes the state
back into the ``[pm_api]`` section, where the vendor library kept its position, so an
existing config.ini keeps working; it also stores the ``[pm_jitter]`` offset. The file is
edited with configupdater: every comment, blank line, key order and unrelated value stays
byte for byte as it was; only the changed lines differ. The new file replaces the old one
atomically (:func:`phishme_intel.files.write_atomic`) with the same permissions and, when
run as root (``--allow-root``), the same owner and group, so the service user can still
read it. A config.ini that is a symbolic link is followed on purpose: the file it points to
is replaced.
"""

from __future__ import annotations

import configparser
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from configupdater import ConfigUpdater, Section

from .errors import CheckpointError
from .files import remove_leftovers, write_atomic
from .options import epoch_seconds, position

log = logging.getLogger(__name__)
SECTION = "pm_api"
JITTER_SECTION = "pm_jitter"
JITTER_KEY = "scheduler_offset"


@dataclass(frozen=True)
class SyncState:
    """What the sync stored last time: the updates position, or a backfill in progress.

    ``backfill_until`` is the instant (epoch seconds) the backfill covers up to, fixed when
    it began; ``backfill_done`` the end of the last search window whose threats every
    adapter committed.
    """

    position: str | None = None
    backfill_until: int | None = None
    backfill_done: int | None = None


@dataclass
class Report:
    """What a run did. ``mode`` is ``backfill`` or ``updates``; times are epoch seconds.

    A backfill also tells how far it has come: its span ``backfill_from`` to
    ``backfill_until`` and ``backfill_reached``, the end of the last search window delivered.
    ``skipped_invalid`` counts the threats the API sent that could not be understood;
    ``rejected`` the values of delivered threats the indicator gate turned away, by kind and
    reason, and ``allowlisted`` their allow-listed indicators, by kind (each value once per threat).
    """

    mode: str = ""
    started: float = 0.0
    finished: float = 0.0
    delivered: int = 0
    withdrawn: int = 0
    skipped_expired: int = 0
    skipped_invalid: int = 0
    commits: int = 0
    requests: int = 0
    position: str | None = None
    backfill_done: int | None = None
    backfill_from: int | None = None
    backfill_until: int | None = None
    backfill_reached: int | None = None
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    allowlisted: Counter[str] = field(default_factory=Counter)


class Checkpoint(Protocol):
    """Where the sync stores its :class:`SyncState` after each commit."""

    def save(self, state: SyncState) -> None: ...


class ConfigCheckpoint:
    """Keeps a :class:`SyncState` (and the jitter offset) in a config.ini.

    :meth:`save` is used only while the run's lock is held: it also removes the temporary
    files that a run killed in the middle of a rewrite left beside config.ini.
    """

    def __init__(self, config_path: str) -> None:
        self.path = config_path

    def save(self, state: SyncState) -> None:
        """Write ``state`` into ``[pm_api]``: ``position`` emptied when None, backfill keys removed.

        Raises CheckpointError (the file left as it was) when it cannot be read or written.
        """
        self._edit(lambda updater: _apply(_section(updater, SECTION), state), "the sync position",
                   "; the products hold the data, the next run will deliver it again", sweep=True)
        log.debug("stored %s in %s", state, os.path.basename(self.path))

    def save_offset(self, minutes: float) -> None:
        """Write ``scheduler_offset = minutes`` into ``[pm_jitter]``, every other byte kept.

        Raises CheckpointError (the file left as it was) when it cannot be read or written.
        """

        def apply(updater: ConfigUpdater) -> None:
            _section(updater, JITTER_SECTION)[JITTER_KEY] = f"{minutes:g}"

        self._edit(apply, f"[{JITTER_SECTION}] {JITTER_KEY}", "", sweep=False)

    def load(self) -> SyncState:
        """The state config.ini holds now. Raises CheckpointError when it cannot be read back."""
        parser = configparser.ConfigParser(interpolation=None, strict=True, default_section="\0")
        try:
            with open(self.path, encoding="utf-8-sig") as handle:
                parser.read_string(handle.read(), source=self.path)
            section = parser[SECTION] if parser.has_section(SECTION) else {}
            return SyncState(
                position(section.get("position", "")),
                epoch_seconds(section.get("backfill_until", "")),
                epoch_seconds(section.get("backfill_done", "")),
            )
        except (OSError, configparser.Error, ValueError) as exc:
            raise CheckpointError(f"cannot read the sync position back from {self.path}: {_reason(exc)}") from None

    def _edit(self, apply: Callable[[ConfigUpdater], None], what: str, consequence: str, sweep: bool) -> None:
        """Rewrite the file with ``apply``'s change; ``sweep``: also remove a killed rewrite's leftovers (lock held)."""
        try:
            with open(self.path, encoding="utf-8-sig") as handle:
                original = handle.read()
            updater = ConfigUpdater()
            updater.read_string(original)
            apply(updater)
            content = str(updater)
            removed, kept = remove_leftovers(self.path) if sweep else ([], [])
            for leftover in removed:
                log.info("removed %s, left by a run killed while it rewrote the config", leftover)
            for leftover in kept:
                log.warning("cannot remove %s, left by a run killed while it rewrote the config", leftover)
            if content != original:
                write_atomic(self.path, content.encode("utf-8"), follow_link=True)
        except (OSError, configparser.Error) as exc:
            raise CheckpointError(f"cannot store {what} in {self.path}: {_reason(exc)}{consequence}") from None


def _section(updater: ConfigUpdater, name: str) -> Section:
    if not updater.has_section(name):
        updater.add_section(name)
    return updater[name]


def _apply(section: Section, state: SyncState) -> None:
    """Set the state's keys in ``section``; a missing key goes after the one before it (or the last key).

    The backfill keys exist only while a backfill is in progress, so that a finished
    backfill leaves config.ini as it was but for the position line.
    """
    previous = None
    for key, value in (
        ("position", state.position),
        ("backfill_until", state.backfill_until),
        ("backfill_done", state.backfill_done),
    ):
        text = "" if value is None else str(value)
        if key in section and value is None and key != "position":
            del section[key]
        elif key in section:
            if (section[key].value or "").strip() != text:
                section[key] = text
        elif value is not None:
            options = section.option_blocks()
            anchor = section[previous] if previous in section else (options[-1] if options else None)
            if anchor is None:
                section[key] = text
            else:
                anchor.add_after.option(key, text)
        previous = key


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, ValueError):
        return str(exc)
    return f"the file is no longer valid INI ({type(exc).__name__})"
