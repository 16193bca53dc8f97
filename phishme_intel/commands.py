"""A whole run, as cron starts it: config → log → lock → jitter → sync → status, as library functions.

:func:`run`, :func:`check`, :func:`status` and :func:`reset` are what the CLI calls and what
a Python program embedding phishme-intel calls (:func:`phishme_intel.preview.dry_run` too);
all raise the :class:`~phishme_intel.errors.Error` family and print nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from . import config as config_module
from . import jitter as jitter_module
from . import reset_plan, statusfile
from .checkpoint import ConfigCheckpoint
from .client import ApiClient
from .config import Config, SyncState
from .errors import ConfigError, Error
from .health import UNKNOWN, Health, judge
from .lock import hold
from .logs import logging_to, redact
from .options import epoch_seconds, position
from .reset_plan import ResetPlan
from .statusfile import RunRecord, StatusFileError
from .sync import Report, synchronize

log = logging.getLogger("phishme_intel")
ProgressHook = Callable[[Report], None]


def run(
    config_path: str, *, verbose: bool = False, on_progress: ProgressHook | None = None, jitter: bool = True
) -> Report:
    """Sync once with the config at ``config_path``; returns what the run did.

    ``on_progress`` is called with the report as the run goes (see :mod:`.progress`);
    ``jitter=False`` skips the ``[pm_jitter]`` wait (the CLI does when started from a
    terminal). The run ends by writing the status file (and metrics file), failed or not.
    """
    config = config_module.load(config_path)
    with _logging(config, verbose), hold(config.lock_file):
        log.info("run started (config %s, adapters: %s)", config.path, ", ".join(config.adapters) or "none")
        watch = _Watch(on_progress)
        try:
            report = _sync(config, watch, jitter)
        except Error as exc:
            log.error("run failed (exit %d): %s", exc.exit_code, exc)
            _record(config, RunRecord.of(watch.ended(), exc.exit_code, redact(str(exc), config.secrets)))
            raise
        except Exception as exc:
            log.exception("run failed: unexpected error")
            error = f"unexpected {type(exc).__name__}; the traceback is in the log file"
            _record(config, RunRecord.of(watch.ended(), 1, error))
            raise
        log.info(
            "run finished: %s, %d delivered, %d withdrawn, %d skipped as expired, %d skipped as invalid, "
            "%d requests, %.1f s",
            report.mode, report.delivered, report.withdrawn, report.skipped_expired, report.skipped_invalid,
            report.requests, report.finished - report.started,
        )
        _record(config, RunRecord.of(report))
    return report


def check(config_path: str, *, verbose: bool = False) -> Config:
    """Validate the config and test the connection and credentials (``GET /feed/``); no sync."""
    config = config_module.load(config_path)
    with _logging(config, verbose):
        client = ApiClient(config.api, config.proxy)
        try:
            client.check()
        except Error as exc:
            log.error("check failed (exit %d): %s", exc.exit_code, exc)
            raise
        finally:
            client.close()
        log.info("check passed: %s answers to user %s", config.api.base_url, config.api.user)
    return config


def status(config_path: str) -> Health:
    """How healthy the sync is, judged from the status file; no network, no lock, nothing written."""
    config = config_module.load(config_path)
    settings, now = config.status, time.time()
    try:
        current = statusfile.read(settings.status_file)
        code, reason = judge(current, settings.stale_after, now)
    except StatusFileError as exc:
        current, code, reason = None, UNKNOWN, str(exc)
    return Health(code, reason, config.path, settings.status_file, settings.stale_after, config.state, current, now)


def reset(config_path: str, since: dt.datetime | None = None, *, verbose: bool = False) -> ResetPlan:
    """Clear the stored position and checkpoint (see :mod:`.reset_plan`); returns the reset it did."""
    plan = reset_plan.plan(config_path, since)
    config = plan.config
    with _logging(config, verbose), hold(config.lock_file):
        ConfigCheckpoint(config.path).save(plan.new_state)
        log.warning("reset: position and backfill checkpoint cleared; the next run backfills from %s",
                    plan.backfill_from.isoformat())
    return plan


class _Watch:
    """Passes the engine's progress on to the caller's hook and keeps the latest report."""

    def __init__(self, hook: ProgressHook | None) -> None:
        self.hook = hook
        self.report = Report(started=time.time())

    def __call__(self, report: Report) -> None:
        self.report = report
        if self.hook is not None:
            self.hook(report)

    def ended(self) -> Report:
        """The latest report, with an end time if the run failed before the engine gave it one."""
        if not self.report.finished:
            self.report.finished = time.time()
        return self.report


def _sync(config: Config, watch: _Watch, jitter: bool) -> Report:
    if jitter:
        minutes = jitter_module.offset(config)
        if minutes and config.state.position:
            jitter_module.wait(minutes)
    client = ApiClient(config.api, config.proxy)
    try:
        adapters = [adapter(settings) for adapter, settings in config.adapters.values()]
        checkpoint = ConfigCheckpoint(config.path)
        return synchronize(client, adapters, checkpoint, config.api, config.state, watch)
    finally:
        client.close()


def _record(config: Config, run: RunRecord) -> None:
    """Write the status file (and the metrics file) for ``run``; a failure is logged, never raised."""
    settings = config.status
    try:
        previous = statusfile.read(settings.status_file)
    except StatusFileError as exc:
        log.warning("%s; starting it afresh", exc)
        previous = None
    current = statusfile.record(previous, config.path, run, _stored_state(config))
    targets = [(settings.status_file, statusfile.write)]
    if settings.metrics_file:
        targets.append((settings.metrics_file, statusfile.write_metrics))
    for target, write in targets:
        try:
            write(target, current)
        except OSError as exc:
            log.error("cannot write %s: %s", target, exc.strerror or exc)


def _stored_state(config: Config) -> SyncState:
    """The position and checkpoint config.ini holds now, after the run wrote what it wrote."""
    try:
        section = config_module.read(config.path)["pm_api"]
        return SyncState(
            position(section.get("position", "")),
            epoch_seconds(section.get("backfill_until", "")),
            epoch_seconds(section.get("backfill_done", "")),
        )
    except (ConfigError, KeyError, ValueError) as exc:
        log.warning("cannot read the stored position back from %s: %s", config.path, exc)
        return config.state


@contextmanager
def _logging(config: Config, verbose: bool) -> Iterator[None]:
    with ExitStack() as stack:
        try:
            stack.enter_context(logging_to(config.log_file, config.log_level, config.secrets, verbose))
        except OSError as exc:
            raise ConfigError(
                config.path, [f"[local_log] log_file: cannot open {config.log_file}: {exc.strerror}"]
            ) from None
        for warning in config.warnings:
            log.warning("config: %s", warning)
        yield
