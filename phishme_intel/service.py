"""``--every``: phishme-intel as a process that stays up (containers, Kubernetes, plain systemd services).

The service runs a sync at once, then one per slot: slots are the multiples of ``every``
since the Unix epoch (``--every 15m``: :00, :15, :30, :45, as cron would start it), shifted
by the ``[pm_jitter]`` offset when jitter is on. Each run is a whole run as cron starts it:
config.ini read again, the lock taken for the run and released after it (a cron run beside
the service simply finds it held), the status file written at its end.

A run that fails is logged and recorded as always, and the service goes on; after repeated
failures it leaves out slots (waiting ``every``, ``2 × every``, ``4 × every``… at most
about an hour) so that a broken API is not asked every slot. Errors no retry can fix end
the service with their exit code: a bad config (78) and rejected credentials (77).

SIGTERM or SIGINT between runs ends the service at once with exit 0. During a run, the run
handles the signal as any run does (:mod:`.interrupts`): it stops at its next safe point,
records ``interrupted`` and ends with 130 or 143, and so does the service; a second signal
ends the process at once. A signal that comes after the run's last safe point, or while a
run is starting, before it handles signals, ends the service after that run, with exit 0.
With ``--listen`` (or ``[local_status] listen``) it serves /healthz and /metrics, see
:mod:`.monitoring.http`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType

from . import commands, interrupts, schedule
from .config import load
from .errors import AuthError, ConfigError, Error, Interrupted, LockHeld
from .logs import logging_to
from .monitoring import http
from .monitoring.health import HEALTHY
from .monitoring.timefmt import iso

log = logging.getLogger(__name__)
FATAL = (ConfigError, AuthError)
BACKOFF_CAP = 3600.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def next_slot(now: float, every: float, offset: float = 0.0) -> float:
    """The first time after ``now`` that is a multiple of ``every`` plus ``offset`` (seconds)."""
    offset %= every
    return (math.floor((now - offset) / every) + 1) * every + offset


def backoff(failures: int, every: float) -> float:
    """How long to leave out slots after ``failures`` failed runs in a row: 0, every, 3 × every… ≤ 1 h."""
    return min(every * (2 ** max(failures - 1, 0) - 1), BACKOFF_CAP) if failures else 0.0


class Service:
    """Syncs with the config at ``config_path`` every ``every`` seconds until stopped."""

    def __init__(self, config_path: str, every: float, *, listen: tuple[str, int] | None = None,
                 verbose: bool = False) -> None:
        self.config_path = config_path
        self.every = every
        self.listen = listen
        self.verbose = verbose
        self.next_run: float | None = None
        self.stopped_by: str | None = None
        self._stopping = threading.Event()

    def stop(self, reason: str) -> None:
        """End the service: at once between runs, after the run under way otherwise."""
        self.stopped_by = self.stopped_by or reason
        self._stopping.set()

    def serve(self) -> int:
        """Run until stopped (returns 0) or until an error no retry can fix (returns its exit code).

        Raises ConfigError when config.ini is invalid at the start or the listen address cannot be bound.
        """
        config = load(self.config_path)
        with ExitStack() as stack:
            try:
                stack.enter_context(logging_to(config.log_file, config.log_level, config.secrets, self.verbose))
            except OSError as exc:
                raise ConfigError(config.path, [f"[local_log] log_file: cannot open {config.log_file}: "
                                                f"{exc.strerror}"]) from None
            listen = self.listen or config.status.listen
            if listen is not None:
                self._serve_http(stack, listen, config.status.status_file)
            stack.enter_context(_stopped_by_signals(self))
            offset = (schedule.offset(config) or 0) * 60
            log.info("service started: a run every %g s%s", self.every,
                     f", {offset:g} s after each slot ([pm_jitter])" if offset else "")
            return self._loop(offset)

    def _serve_http(self, stack: ExitStack, listen: tuple[str, int], status_file: str) -> None:
        collector = http.StatusCollector(status_file, lambda: self.next_run)
        try:
            host, port = stack.enter_context(http.serving(listen, self._health, collector))
        except OSError as exc:
            raise ConfigError(self.config_path, [
                f"listen: cannot serve HTTP on {listen[0]}:{listen[1]}: {exc.strerror or exc}"
            ]) from None
        shown = f"[{host}]" if ":" in host else host
        log.info("serving /healthz and /metrics on http://%s:%d", shown, port)

    def _health(self) -> tuple[bool, str]:
        try:
            health = commands.status(self.config_path)
        except Error as exc:
            return False, f"UNKNOWN: {str(exc).splitlines()[0]}"
        return health.exit_code == HEALTHY, f"{health.verdict.upper()}: {health.reason}"

    def _loop(self, offset: float) -> int:
        failures = 0
        while not self._stopping.is_set():
            self.next_run = None
            try:
                commands.run(self.config_path, verbose=self.verbose, jitter=False)
                failures = 0
            except FATAL as exc:
                log.error("service stopped: exit %d needs a fix that no retry brings", exc.exit_code)
                return exc.exit_code
            except LockHeld:
                pass  # another run (cron, by hand) is syncing: this slot is done
            except Interrupted as exc:  # a signal stopped the run at a safe point (see .interrupts)
                log.info("service stopped: the run under way stopped on a signal (exit %d)", exc.exit_code)
                return exc.exit_code
            except Exception:  # the run logged it and recorded it in the status file
                failures += 1
            if (signum := interrupts.requested()) is not None:  # came after the run's last safe point
                self.stop(signal.Signals(signum).name)
                break
            now = time.time()
            self.next_run = next_slot(now + backoff(failures, self.every), self.every, offset)
            if failures > 1:
                log.warning("%d runs in a row failed: the next one waits %g s", failures, self.next_run - now)
            log.info("next run at %s", iso(self.next_run))
            self._stopping.wait(self.next_run - now)
        log.info("service stopped by %s", self.stopped_by)
        return 0


@contextmanager
def _stopped_by_signals(service: Service) -> Iterator[None]:
    """SIGTERM and SIGINT stop ``service``; a second one ends the process at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if service.stopped_by is not None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        service.stop(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
