"""Writing the sync's progress back into config.ini.

The position (and, during a backfill, ``backfill_until``/``backfill_done``) is stored in
``[pm_api]``, where the vendor library kept its position, so an existing config.ini keeps
working. The file is edited with configupdater: every comment, blank line, key order and
unrelated value stays byte for byte as it was; only the changed lines differ. The new file
replaces the old one atomically (:mod:`phishme_intel.atomic`) with the same permissions.
"""

from __future__ import annotations

import configparser
import logging
import os

from configupdater import ConfigUpdater, Section

from .atomic import remove_leftovers, write_atomic
from .config import SyncState
from .errors import CheckpointError

log = logging.getLogger(__name__)
SECTION = "pm_api"


class ConfigCheckpoint:
    """Stores a :class:`~phishme_intel.config.SyncState` in the ``[pm_api]`` section of a config.ini.

    Used only while the run's lock is held: saving also removes the temporary files that a
    run killed in the middle of a rewrite left beside config.ini.
    """

    def __init__(self, config_path: str) -> None:
        self.path = config_path

    def save(self, state: SyncState) -> None:
        """Write ``state`` into the file: ``position`` emptied when None, backfill keys removed.

        Raises CheckpointError (the file left as it was) when it cannot be read or written.
        """
        try:
            with open(self.path, encoding="utf-8-sig") as handle:
                original = handle.read()
            updater = ConfigUpdater()
            updater.read_string(original)
            if not updater.has_section(SECTION):
                updater.add_section(SECTION)
            _apply(updater[SECTION], state)
            content = str(updater)
            for leftover in remove_leftovers(self.path):
                log.info("removed %s, left by a run killed while it rewrote the config", leftover)
            if content != original:
                write_atomic(self.path, content.encode("utf-8"))
        except (OSError, configparser.Error) as exc:
            raise CheckpointError(
                f"cannot store the sync position in {self.path}: {_reason(exc)}; "
                "the products hold the data, the next run will deliver it again"
            ) from None
        log.debug("stored %s in %s", state, os.path.basename(self.path))


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
    return f"the file is no longer valid INI ({type(exc).__name__})"
