"""``--reset``: forget the stored position so that the next run backfills again.

Without a date the position and backfill checkpoint are emptied and the next run backfills
from ``init_date``, as the first run did. With ``--since DATE`` the next run backfills from
DATE instead, ``init_date`` left as it is: the reset stores a backfill checkpoint that
starts at DATE and covers up to the moment of the reset (the following updates feed brings
everything after it). :func:`plan` says what a reset would do; :func:`phishme_intel.job.reset`
does it, under the lock, with the same atomic, comment-preserving write as the position.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from . import config as config_module
from .config import Config, SyncState


@dataclass(frozen=True)
class ResetPlan:
    """A reset of one config: the state stored now and the state that replaces it."""

    config: Config
    new_state: SyncState
    backfill_from: dt.datetime

    def describe(self) -> str:
        """What the reset changes, for a person to confirm."""
        current = self.config.state
        stored = (
            f"the position {current.position}" if current.position
            else "an unfinished backfill checkpoint" if current.backfill_until is not None
            else "no position (the next run backfills anyway)"
        )
        return (
            f"{self.config.path} stores {stored}.\n"
            f"After the reset the next run backfills every threat last published since "
            f"{self.backfill_from:%Y-%m-%d %H:%M:%S %Z}, then follows the updates feed."
        )


def plan(config_path: str, since: dt.datetime | None = None) -> ResetPlan:
    """The reset of the config at ``config_path``; ``since`` replaces ``init_date`` for the next backfill."""
    config = config_module.load(config_path)
    if since is None:
        return ResetPlan(config, SyncState(), config.api.init_date)
    now = int(time.time())
    begin = min(int(since.timestamp()), now)
    return ResetPlan(config, SyncState(backfill_until=now, backfill_done=begin), since)
