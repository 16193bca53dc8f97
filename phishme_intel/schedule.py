"""``[pm_jitter]``: so that a fleet of installations does not hit the API at the same second.

Cron starts every installation at :00, :15, :30 and :45. With ``use = True`` each one picks
a random ``scheduler_offset`` in ``[0, execution_frequency)`` minutes once, stores it in
config.ini (the same atomic, comment-preserving edit as the position) and waits that long
before the first request of every scheduled updates run. The offset is never negative: the
vendor library could store -1 and then fail on every run; such a value, or one no longer
below ``execution_frequency``, is replaced by a new pick.
"""

from __future__ import annotations

import configparser
import logging
import math
import random
import time

from configupdater import ConfigUpdater

from .atomic import write_atomic
from .config import Config
from .errors import CheckpointError

log = logging.getLogger(__name__)
SECTION = "pm_jitter"
KEY = "scheduler_offset"


def choose(execution_frequency: int, rng: random.Random | None = None) -> float:
    """A random offset in ``[0, execution_frequency)`` minutes, in hundredths of a minute."""
    draw = (rng or random).random()
    return math.floor(draw * execution_frequency * 100) / 100


def offset(config: Config) -> float | None:
    """The offset in minutes for ``config``: the stored one, else a new pick, stored; None if jitter is off."""
    settings = config.jitter
    if not settings.use:
        return None
    current = settings.scheduler_offset
    if current is not None and 0 <= current < settings.execution_frequency:
        return current
    chosen = choose(settings.execution_frequency)
    if current is not None:
        log.warning("[pm_jitter] scheduler_offset %g is not within [0, %d): chose %g instead",
                    current, settings.execution_frequency, chosen)
    try:
        store(config.path, chosen)
    except CheckpointError as exc:
        log.warning("%s; this run waits %g min all the same", exc, chosen)
        return chosen
    log.info("jitter: chose scheduler_offset %g min and stored it in %s", chosen, config.path)
    return chosen


def wait(minutes: float) -> None:
    """Sleep ``minutes`` before the first request."""
    log.info("jitter: waiting %g min ([pm_jitter] scheduler_offset) before the first request", minutes)
    time.sleep(minutes * 60)


def store(config_path: str, minutes: float) -> None:
    """Write ``scheduler_offset = minutes`` into ``[pm_jitter]``, every other byte kept.

    Raises CheckpointError (the file left as it was) when it cannot be read or written.
    """
    try:
        with open(config_path, encoding="utf-8-sig") as handle:
            updater = ConfigUpdater()
            updater.read_string(handle.read())
        if not updater.has_section(SECTION):
            updater.add_section(SECTION)
        updater[SECTION][KEY] = f"{minutes:g}"
        write_atomic(config_path, str(updater).encode("utf-8"))
    except (OSError, configparser.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"the file is no longer valid INI ({type(exc).__name__})"
        raise CheckpointError(f"cannot store [pm_jitter] scheduler_offset in {config_path}: {reason}") from None
