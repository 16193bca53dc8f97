"""When a scheduled run starts: ``[pm_jitter]``, so a fleet of installations does not hit the API at once.

Cron starts every installation at :00, :15, :30 and :45. With ``use = True`` each one picks
a random ``scheduler_offset`` in ``[0, execution_frequency)`` minutes once, stores it in
config.ini (the same atomic, comment-preserving edit as the position) and waits that long
before the first request of every scheduled updates run. The offset is never negative: the
vendor library could store -1 and then fail on every run; such a value, or one no longer
below ``execution_frequency``, is replaced by a new pick.
"""

from __future__ import annotations

import logging
import math
import random

from . import interrupts
from .config import Config
from .errors import CheckpointError
from .state import ConfigCheckpoint

log = logging.getLogger(__name__)


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
        ConfigCheckpoint(config.path).save_offset(chosen)
    except CheckpointError as exc:
        log.warning("%s; this run waits %g min all the same", exc, chosen)
        return chosen
    log.info("jitter: chose scheduler_offset %g min and stored it in %s", chosen, config.path)
    return chosen


def wait(minutes: float) -> bool:
    """Sleep ``minutes`` before the first request; True when a stop request (a signal) cut it short."""
    log.info("jitter: waiting %g min ([pm_jitter] scheduler_offset) before the first request", minutes)
    return interrupts.sleep(minutes * 60)

