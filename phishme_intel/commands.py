"""The library API: one function per command, as cron, the CLI and an embedding program call them.

:func:`run` is a whole run as cron starts it (config → log → lock → jitter → sync → status);
:func:`check` validates the config and tests the connection; :func:`status` judges the
status file; :func:`dry_run` fetches and transforms with nothing written; :func:`reset`
forgets the stored position (:func:`plan_reset` says what it would do). All raise the
:class:`~phishme_intel.errors.Error` family and print nothing. Any other exception (a bug, a
plug-in that crashes) has its traceback written to the config's log file, secrets masked,
and becomes :class:`~phishme_intel.errors.Unexpected` (exit 1), whose message says where the
traceback is (:func:`reported`).

``--dry-run`` runs the engine unchanged, handed substitutes for the parts that write: a
:class:`Preview` destination in place of the adapters (they are not even opened, so no
product is touched) and a :class:`RecordingCheckpoint` that notes the states the engine
would store instead of writing config.ini. Its log goes to stderr, never to the log file;
there is no lock, no status or metrics file and no jitter wait.

``--reset`` without a date empties the position and backfill checkpoint, so the next run
backfills from ``init_date`` as the first run did. With ``--since DATE`` it stores a
backfill checkpoint that starts at DATE and covers up to the moment of the reset (the
following updates feed brings everything after it), ``init_date`` left as it is.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from . import interrupts, schedule
from .adapters.base import Adapter
from .client import ApiClient
from .config import Config, load, log_target
from .config.indicators import gate as indicator_gate
from .config.understood import require_writable_folder, utc
from .errors import CheckpointError, ConfigError, Error, Interrupted, Unexpected
from .lock import hold
from .logs import logging_to, redact
from .models import Gate, Threat, ThreatRef
from .monitoring import metrics, status_file
from .monitoring.health import UNKNOWN, Health, judge
from .monitoring.status_file import INTERRUPTED, RunRecord, StatusFileError
from .state import ConfigCheckpoint, Report, SyncState
from .sync import synchronize

log = logging.getLogger("phishme_intel")
ProgressHook = Callable[[Report], None]

P = ParamSpec("P")
R = TypeVar("R")


def reported(command: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Every unexpected exception of ``command`` becomes Unexpected, its traceback in the log file.

    The wrapped function's first argument is the config path. An Error passes as it is.
    """
    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except Error:
                raise
            except Exception as exc:
                config_path = kwargs.get("config_path", args[0] if args else "")
                raise unexpected(command, str(config_path), exc) from None

        return call

    return wrap


def unexpected(command: str, config_path: str, exc: Exception) -> Unexpected:
    """Write ``exc``'s traceback to the config's log file (if it has one); the error that says where."""
    log_file, secrets = log_target(config_path)
    where = "no log file could be found in the config to keep its traceback"
    if log_file is not None:
        try:
            with logging_to(log_file, "error", secrets):
                log.error("%s failed: unexpected error", command, exc_info=exc)
            where = f"the traceback is in {log_file}"
        except OSError as error:
            where = f"its traceback could not be written to {log_file} ({error.strerror or error})"
    return Unexpected(redact(f"{command}: unexpected {type(exc).__name__}; {where}", secrets))


@reported("run")
def run(
    config_path: str, *, verbose: bool = False, on_progress: ProgressHook | None = None, jitter: bool = True
) -> Report:
    """Sync once with the config at ``config_path``; returns what the run did.

    ``on_progress`` is called with the report as the run goes (see :mod:`.monitoring.progress`);
    ``jitter=False`` skips the ``[pm_jitter]`` wait (the CLI does when started from a
    terminal). The wait comes before the lock is taken, and the sync state is read from
    config.ini after it is taken, so a run that started while another finished its backfill
    goes on from that backfill's position. SIGINT and SIGTERM stop the run at its next safe
    point (:mod:`.interrupts`): it raises Interrupted or Terminated. The run ends by writing
    the status file (and metrics file), whether it succeeded, failed or was interrupted.
    """
    config = load(config_path)
    require_writable_folder(config)
    with _logging(config, verbose), interrupts.handling():
        if jitter:
            _wait_offset(config)
        with hold(config.lock_file):
            log.info("run started (config %s, adapters: %s)", config.path, ", ".join(config.adapters))
            watch = _Watch(on_progress)
            try:
                interrupts.check()
                report = _sync(config, ConfigCheckpoint(config.path).load(), watch)
            except Interrupted as exc:
                log.warning("run %s", exc)
                _record(config, RunRecord.of(watch.ended(), exc.exit_code, str(exc), outcome=INTERRUPTED))
                raise
            except Error as exc:
                log.error("run failed (exit %d): %s", exc.exit_code, exc)
                _record(config, RunRecord.of(watch.ended(), exc.exit_code, redact(str(exc), config.secrets)))
                raise
            except Exception as exc:
                log.exception("run failed: unexpected error")
                failure = Unexpected(f"unexpected {type(exc).__name__}; the traceback is in {config.log_file}")
                _record(config, RunRecord.of(watch.ended(), failure.exit_code, str(failure)))
                raise failure from None
            log.info(
                "run finished: %s, %d delivered, %d withdrawn, %d skipped as expired, %d skipped as invalid, "
                "%d values not indicators, %d indicators allow-listed, %d requests, %.1f s",
                report.mode, report.delivered, report.withdrawn, report.skipped_expired, report.skipped_invalid,
                sum(report.rejected.values()), sum(report.allowlisted.values()), report.requests,
                report.finished - report.started,
            )
            _record(config, RunRecord.of(report))
    return report


def _wait_offset(config: Config) -> None:
    """The ``[pm_jitter]`` wait, before the lock; the offset is chosen and stored under it.

    Only an updates run waits (as config.ini says before the lock: a stale read at worst
    waits once for nothing). Raises Interrupted or Terminated when a signal cuts the wait short.
    """
    if not config.jitter.use:
        return
    with hold(config.lock_file):
        minutes = schedule.offset(config)
    if minutes and config.state.position and schedule.wait(minutes):
        interrupts.check()


@reported("--check")
def check(config_path: str, *, verbose: bool = False) -> Config:
    """Validate the config and test the connection and credentials (``GET /feed/``); no sync."""
    config = load(config_path)
    require_writable_folder(config)
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


@reported("--status")
def status(config_path: str) -> Health:
    """How healthy the sync is, judged from the status file; no network, no lock, nothing written."""
    config = load(config_path)
    settings, now = config.status, time.time()
    try:
        current = status_file.read(settings.status_file)
        code, reason = judge(current, settings.stale_after, now)
    except StatusFileError as exc:
        current, code, reason = None, UNKNOWN, str(exc)
    return Health(code, reason, config.path, settings.status_file, settings.stale_after, config.state, current, now)


@reported("--reset")
def reset(config_path: str, since: dt.datetime | None = None, *, verbose: bool = False) -> ResetPlan:
    """Clear the stored position and checkpoint (see :func:`plan_reset`); returns the reset it did."""
    plan = plan_reset(config_path, since)
    config = plan.config
    require_writable_folder(config)
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


def _sync(config: Config, state: SyncState, watch: _Watch) -> Report:
    client = ApiClient(config.api, config.proxy)
    try:
        adapters = [adapter(settings) for adapter, settings in config.adapters.values()]
        checkpoint = ConfigCheckpoint(config.path)
        return synchronize(client, adapters, checkpoint, config.api, state, watch, gate=_gate(config))
    finally:
        client.close()


def _gate(config: Config) -> Gate:
    """The run's indicator gate, its allow-list loaded; ConfigError if a file changed since the check."""
    try:
        gate = indicator_gate(config.indicators)
    except (OSError, ValueError) as exc:
        raise ConfigError(config.path, [f"[indicators]: cannot load the allow-list: {exc}"]) from None
    if len(gate.allowlist):
        log.info("allow-list: %d entries", len(gate.allowlist))
    return gate


def _record(config: Config, run: RunRecord) -> None:
    """Write the status file (and the metrics file) for ``run``; a failure is logged, never raised."""
    settings = config.status
    try:
        previous = status_file.read(settings.status_file)
    except StatusFileError as exc:
        log.warning("%s; starting it afresh", exc)
        previous = None
    current = status_file.record(previous, config.path, run, _stored_state(config))
    targets = [(settings.status_file, status_file.write)]
    if settings.metrics_file:
        targets.append((settings.metrics_file, metrics.write))
    for target, write in targets:
        try:
            write(target, current)
        except OSError as exc:
            log.error("cannot write %s: %s", target, exc.strerror or exc)


def _stored_state(config: Config) -> SyncState:
    """The position and checkpoint config.ini holds now, after the run wrote what it wrote."""
    try:
        return ConfigCheckpoint(config.path).load()
    except CheckpointError as exc:
        log.warning("%s", exc)
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
            f"{utc(self.backfill_from)}, then follows the updates feed."
        )


@reported("--reset")
def plan_reset(config_path: str, since: dt.datetime | None = None) -> ResetPlan:
    """The reset of the config at ``config_path``; ``since`` replaces ``init_date`` for the next backfill."""
    config = load(config_path)
    if since is None:
        return ResetPlan(config, SyncState(), config.api.init_date)
    now = int(time.time())
    begin = min(int(since.timestamp()), now)
    return ResetPlan(config, SyncState(backfill_until=now, backfill_done=begin), since)


class RecordingCheckpoint:
    """A checkpoint store that writes nothing and remembers every state it was given."""

    def __init__(self) -> None:
        self.saved: list[SyncState] = []

    def save(self, state: SyncState) -> None:
        self.saved.append(state)


class Preview(Adapter):
    """Stands in for every adapter: counts what it is handed, keeps no threat and writes nothing."""

    name = "dry-run"

    def __init__(self) -> None:
        super().__init__({})
        self.threats: Counter[str] = Counter()
        self.indicators: Counter[str] = Counter()
        self.withdrawn: Counter[str] = Counter()

    def deliver(self, threats: Sequence[Threat]) -> None:
        self.threats.update(threat.kind for threat in threats)
        self.indicators.update(indicator.kind for threat in threats for indicator in threat.indicators)

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        self.withdrawn.update(ref.kind for ref in refs)

    def commit(self) -> None:
        """Nothing to make durable."""


@dataclass(frozen=True)
class DryRun:
    """What a run would have done: the report, what the adapters would have received, the state it would store."""

    config: str
    report: Report
    adapters: list[str]
    threats: Counter[str] = field(default_factory=Counter)
    indicators: Counter[str] = field(default_factory=Counter)
    withdrawn: Counter[str] = field(default_factory=Counter)
    would_store: SyncState | None = None


@reported("--dry-run")
def dry_run(
    config_path: str, *, verbose: bool = False, on_progress: Callable[[Report], None] | None = None
) -> DryRun:
    """Fetch and transform as a run would, write nothing; returns what it would have delivered and stored."""
    config = load(config_path)
    level = config.log_level if verbose else "warning"
    with logging_to(None, level, config.secrets, verbose=True):
        for warning in config.warnings:
            log.warning("config: %s", warning)
        log.info("dry run started (config %s): nothing will be written", config.path)
        client = ApiClient(config.api, config.proxy)
        preview, checkpoint = Preview(), RecordingCheckpoint()
        try:
            report = synchronize(client, [preview], checkpoint, config.api, config.state, on_progress,
                                 gate=_gate(config))
        finally:
            client.close()
    return DryRun(
        config=config.path,
        report=report,
        adapters=list(config.adapters),
        threats=preview.threats,
        indicators=preview.indicators,
        withdrawn=preview.withdrawn,
        would_store=checkpoint.saved[-1] if checkpoint.saved else None,
    )


def describe_dry_run(result: DryRun) -> str:
    """What the dry run found, for a person."""
    report = result.report
    adapters = ", ".join(result.adapters) or "no adapter"
    delivered = sum(result.threats.values())
    lines = [
        f"dry run of {result.config} ({report.mode}): nothing was written",
        *_span(report),
        f"would deliver {delivered:,} threats ({_by_kind(result.threats)}) "
        f"with {sum(result.indicators.values()):,} indicators to {adapters}",
    ]
    if result.indicators:
        lines.append(f"  indicators: {_by_kind(result.indicators)}")
    lines.append(f"would withdraw {sum(result.withdrawn.values()):,} threats ({_by_kind(result.withdrawn)})")
    lines.append(f"would skip {report.skipped_expired:,} as expired, {report.skipped_invalid:,} as invalid")
    rejected = Counter({f"{kind} {reason}": count for (kind, reason), count in report.rejected.items()})
    lines.append(f"would leave out {sum(rejected.values()):,} values that are not indicators ({_by_kind(rejected)}) "
                 f"and emit {sum(report.allowlisted.values()):,} allow-listed indicators nowhere "
                 f"({_by_kind(report.allowlisted)})")
    lines.append(f"would store {_state(result.would_store)}")
    lines.append(f"{report.requests:,} requests in {report.finished - report.started:.1f} s")
    return "\n".join(lines)


def _span(report: Report) -> list[str]:
    """The backfill's span as the run understood it (init_date, or the stored checkpoint, up to now)."""
    if report.mode != "backfill" or report.backfill_from is None or report.backfill_until is None:
        return []
    since, until = (dt.datetime.fromtimestamp(moment, dt.timezone.utc)
                    for moment in (report.backfill_from, report.backfill_until))
    return [f"backfill from {utc(since)} up to {utc(until)}"]


def _by_kind(counts: Counter[str]) -> str:
    return ", ".join(f"{count:,} {kind}" for kind, count in counts.most_common()) or "none"


def _state(state: SyncState | None) -> str:
    if state is None:
        return "nothing: the stored position stays as it is"
    if state.position:
        return f"position {state.position}"
    return f"backfill checkpoint {state.backfill_done} of {state.backfill_until}"
