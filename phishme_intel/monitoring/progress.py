"""A progress line for a person watching a run on a terminal.

:class:`ProgressLine` is an ``on_progress`` hook for :func:`phishme_intel.run`: it redraws
one line on a terminal stream, at most every ``interval`` seconds. A backfill shows a bar
over its span of time, the counts and an estimate of the time left; an updates run shows
the counts. The engine knows nothing of it: it only calls the hook with its report. The CLI
uses it only when stderr is a terminal, so under cron nothing is drawn at all.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import TextIO

from ..state import Report
from .timefmt import duration


def fraction(report: Report) -> float | None:
    """How much of the backfill's span is delivered, 0 to 1; None for an updates run."""
    if report.backfill_from is None or report.backfill_until is None:
        return None
    span = report.backfill_until - report.backfill_from
    if span <= 0:
        return 1.0
    if report.backfill_reached is None:
        return 0.0
    return min(1.0, max(0.0, (report.backfill_reached - report.backfill_from) / span))


def line(report: Report, now: float, width: int) -> str:
    """The progress line for ``report`` at ``now`` (epoch seconds), at most ``width - 1`` characters."""
    counts = f"{report.delivered:,} delivered, {report.withdrawn:,} withdrawn"
    done = fraction(report)
    if done is None:
        return f"{report.mode or 'sync'}: {counts}"[: width - 1]
    elapsed = max(0.0, now - report.started)
    eta = f"ETA {duration(elapsed * (1 - done) / done)}" if done > 0 else "ETA --"
    reached = report.backfill_reached or report.backfill_from or 0
    day = dt.datetime.fromtimestamp(reached, dt.timezone.utc).strftime("%Y-%m-%d")
    tail = f" {done:4.0%}  {eta}  up to {day}  {counts}"
    bar_width = max(10, min(40, width - 1 - len("backfill []") - len(tail)))
    filled = int(bar_width * done)
    return f"backfill [{'#' * filled}{'-' * (bar_width - filled)}]{tail}"[: width - 1]


class ProgressLine:
    """Draws the progress of a run on ``stream`` (a terminal), redrawing in place."""

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self._last_draw = 0.0
        self._drawn = 0
        self._report: Report | None = None

    def __call__(self, report: Report) -> None:
        self._report = report
        if time.monotonic() - self._last_draw >= self.interval:
            self._draw(report)

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._report is not None:
            self._draw(self._report)
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, report: Report) -> None:
        text = line(report, time.time(), self._width())
        self.stream.write("\r" + text + " " * max(0, self._drawn - len(text)))
        self.stream.flush()
        self._drawn = len(text)
        self._last_draw = time.monotonic()

    def _width(self) -> int:
        """The terminal's width in columns; 80 if the stream cannot tell."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            return 80
