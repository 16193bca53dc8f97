"""``--status``: is the sync healthy? Judged from the status file, for a person and a monitoring check.

Nothing here touches the network, the lock or any file but the two it reads (config.ini
and the status file). The verdict's exit code follows the monitoring-plugin convention:

====  =========  ==================================================================
code  verdict    when
====  =========  ==================================================================
0     healthy    the last run succeeded, no longer ago than ``stale_after``
1     failing    the last run failed, but the last success is recent enough
2     stale      the last success is older than ``stale_after``, or no run succeeded
3     unknown    there is no status file yet, or it cannot be read
====  =========  ==================================================================
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..state import SyncState
from .status_file import INTERRUPTED, RunRecord, Status
from .timefmt import duration

HEALTHY, FAILING, STALE, UNKNOWN = 0, 1, 2, 3
_VERDICTS = {HEALTHY: "healthy", FAILING: "failing", STALE: "stale", UNKNOWN: "unknown"}


@dataclass(frozen=True)
class Health:
    """The verdict on one config's sync, and what it is based on."""

    exit_code: int
    reason: str
    config: str
    status_file: str
    stale_after: int
    state: SyncState
    status: Status | None
    checked_at: float

    @property
    def verdict(self) -> str:
        """``healthy``, ``failing``, ``stale`` or ``unknown``."""
        return _VERDICTS[self.exit_code]


def judge(status: Status | None, stale_after: int, now: float) -> tuple[int, str]:
    """The exit code and its reason for ``status``, ``stale_after`` minutes, at ``now``."""
    if status is None:
        return UNKNOWN, "no status file yet: phishme-intel has not run with this config (or it moved)"
    success = status.last_success
    if success is None:
        return STALE, "no run has succeeded yet"
    age = now - success.finished
    if age > stale_after * 60:
        return STALE, f"the last success was {duration(age)} ago, more than stale_after ({stale_after} min)"
    if not status.last_run.succeeded:
        return FAILING, f"the last run {_ended(status.last_run)}"
    return HEALTHY, f"the last run succeeded {duration(now - status.last_run.finished)} ago"


def describe(health: Health) -> str:
    """The verdict and the facts behind it, as a few aligned lines for a person."""
    now = health.checked_at
    lines = [("health", f"{health.verdict.upper()}: {health.reason}")]
    status = health.status
    if status is not None:
        lines.append(("last run", _run(status.last_run, now)))
        if status.last_run.error:
            lines.append(("", status.last_run.error.replace("\n", " ")))
        lines.append(("last success", _run(status.last_success, now) if status.last_success else "never"))
        lines.append(("counts", _counts(status.last_run)))
    lines.append(("position", _position(health.state, status, now)))
    if health.state.backfill_until is not None:
        done = health.state.backfill_done
        lines.append(("backfill", f"in progress: done up to {_time(done) if done else 'its start'} "
                                  f"of {_time(health.state.backfill_until)}"))
    lines += [("config", health.config), ("status file", health.status_file)]
    return "\n".join(f"{label:<13} {text}".rstrip() for label, text in lines)


def _run(run: RunRecord, now: float) -> str:
    result = "succeeded" if run.succeeded else _ended(run)
    return (f"{_time(run.finished)} ({duration(now - run.finished)} ago), {run.mode or 'no sync'}, "
            f"{result} after {run.finished - run.started:.1f} s")


def _ended(run: RunRecord) -> str:
    """How an unsuccessful run ended: ``failed with exit 69``, ``was interrupted (exit 143)``."""
    if run.outcome == INTERRUPTED:
        return f"was interrupted (exit {run.exit_code})"
    return f"failed with exit {run.exit_code}"


def _counts(run: RunRecord) -> str:
    return (f"{run.delivered} delivered, {run.withdrawn} withdrawn, {run.skipped_expired} skipped as expired, "
            f"{run.skipped_invalid} skipped as invalid; {run.requests} requests")


def _position(state: SyncState, status: Status | None, now: float) -> str:
    if state.position is None:
        return "none stored: the next run backfills"
    if status is not None and status.position == state.position and status.position_since is not None:
        return f"{state.position}, stored for {duration(now - status.position_since)}"
    return f"{state.position}, changed after the last run (edited by hand?)"


def _time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
