"""Waiting politely: back-off with jitter, ``Retry-After``, and a pacer that spaces calls.

One helper for everything that retries or paces: the API client, the Splunk HEC and TAXII
adapters (retries) and the CEF adapter (``max_eps``).

- :func:`backoff` is the wait before retry number ``attempt + 1``: exponential from ``base``,
  half fixed and half random (so workers that failed together do not retry together), at
  most :data:`MAX_BACKOFF`.
- :func:`retry_after` reads a ``Retry-After`` header, in seconds or as an HTTP date
  (RFC 9110 §10.2.3), bounded to ``[0, cap]``; ``None`` when absent or unreadable.
- :class:`Throttle` spaces calls at least ``1 / per_second`` apart across threads, and
  :meth:`Throttle.pause` holds every caller back (after a 429).
- :class:`Retrier` runs a call until it succeeds, at most ``retries + 1`` times: an attempt
  that raises :class:`TryAgain` is retried after its ``delay`` (a ``Retry-After``) or the
  back-off; after the last one the caller's own error is raised.

Every wait returns early when a signal asked the run to stop (:mod:`.interrupts`), and raises
Interrupted or Terminated.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from . import interrupts

MAX_BACKOFF = 60.0
MAX_RETRY_AFTER = 300.0
T = TypeVar("T")


def backoff(attempt: int, base: float, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (0-based): half fixed, half random."""
    delay = min(cap, base * 2**attempt)
    return delay / 2 + random.uniform(0, delay / 2)


def retry_after(value: str | None, cap: float = MAX_RETRY_AFTER, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delay-seconds or an HTTP date), within ``[0, cap]``.

    ``now`` (epoch seconds) is the moment an HTTP date is measured from; the current time by default.
    """
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is always GMT; parsedate gives a naive time for "-0000"
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(cap, max(0.0, seconds))


class Throttle:
    """Spaces calls to :meth:`wait` at least ``1 / per_second`` apart across threads; no limit at 0.

    :meth:`pause` holds every caller back for a while (a server asked everyone to slow down).
    """

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Return when the caller's turn has come."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now and interrupts.sleep(slot - now):
            interrupts.check()

    def pause(self, seconds: float) -> None:
        """No call returns from :meth:`wait` for the next ``seconds``."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


class TryAgain(Exception):
    """An attempt failed in a way worth trying again; ``delay`` (seconds) overrides the back-off.

    ``everyone``: the server asked the whole client to slow down (a 429), so every caller of
    the retrier's throttle waits, not only the one that was told.
    """

    def __init__(self, reason: str, delay: float | None = None, everyone: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.everyone = everyone


class Retrier:
    """Runs attempts with back-off until one succeeds or ``retries + 1`` have failed.

    ``give_up(what, last, attempts)`` builds the error raised after the last attempt;
    each retry is logged as a warning on ``log``. With a ``throttle``, every attempt waits
    its turn, and a ``TryAgain`` with a delay or ``everyone`` pauses the whole throttle.
    """

    def __init__(
        self,
        retries: int,
        base: float,
        give_up: Callable[[str, TryAgain, int], Exception],
        log: logging.Logger,
        throttle: Throttle | None = None,
    ) -> None:
        self.retries = retries
        self.base = base
        self._give_up = give_up
        self._log = log
        self._throttle = throttle

    def call(self, what: str, attempt: Callable[[], T], first: int = 0) -> tuple[T, int]:
        """Attempts from number ``first`` (0-based) on until one succeeds: its result and its number."""
        number = first
        while True:
            if self._throttle is not None:
                self._throttle.wait()
            try:
                return attempt(), number
            except TryAgain as retry:
                self.failed(what, number, retry)
            number += 1

    def failed(self, what: str, attempt: int, retry: TryAgain) -> None:
        """After attempt number ``attempt`` failed: raise the caller's error if it was the last, else wait."""
        attempts = self.retries + 1
        if attempt + 1 >= attempts:
            raise self._give_up(what, retry, attempts) from None
        delay = retry.delay if retry.delay is not None else backoff(attempt, self.base)
        self._log.warning(
            "%s failed (%s); retry %d of %d in %.1f s", what, retry.reason, attempt + 1, attempts - 1, delay
        )
        if self._throttle is not None and (retry.everyone or retry.delay is not None):
            self._throttle.pause(delay)
        if interrupts.sleep(delay):
            interrupts.check()
