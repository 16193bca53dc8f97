"""What the last runs did, kept where a person and a monitoring system can read it.

Every run that took the lock ends by replacing the **status file** (JSON, atomically): the
last run (times, outcome, exit code, counts, requests), the last *successful* run (carried
over from earlier runs while runs fail), the stored position and since when it has been
the stored one, the backfill checkpoint while a backfill is unfinished, and running totals.
The same facts can go to a metrics file too (:mod:`.metrics`). The status file never holds
a secret.

The status file's layout (``schema`` 1; times are ISO 8601 in UTC)::

    {"schema": 1, "config": "/var/lib/phishme-intel/config.ini",
     "last_run": RUN, "last_success": RUN or null,
     "position": "0b3c…" or null, "position_since": TIME or null,
     "backfill": {"until": TIME, "done": TIME} or null,
     "totals": {"runs": 7, "failed_runs": 1, "delivered": 9120, "withdrawn": 12,
                "skipped_expired": 0, "skipped_invalid": 1, "requests": 411,
                "rejected_indicators": 230, "allowlisted_indicators": 4}}

where ``RUN`` is ``{"started", "finished", "duration_seconds", "outcome" ("success",
"failed", or "interrupted": SIGINT or SIGTERM stopped it at a safe point), "exit_code",
"error" (the message, or null), "mode" ("backfill" or "updates"),
"delivered", "withdrawn", "skipped_expired", "skipped_invalid" (threats that could not
be understood), "requests", "rejected_indicators" (the values of delivered threats the
indicator gate turned away, by kind and reason: ``{"domain": {"wildcard": 3}}``),
"allowlisted_indicators" (allow-listed indicators of delivered threats, by kind)}``. A status
file written by an earlier release says ``failed`` for ``skipped_invalid``; it is read as such.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..files import write_atomic
from ..state import Report, SyncState
from .timefmt import iso

SCHEMA = 1
SUCCESS, FAILED, INTERRUPTED = "success", "failed", "interrupted"
COUNTS = ("delivered", "withdrawn", "skipped_expired", "skipped_invalid")
#: The indicator counts of a run (by kind, and for rejections by reason), summed in the totals.
INDICATOR_COUNTS = ("rejected_indicators", "allowlisted_indicators")
_RENAMED = {"failed": "skipped_invalid"}


class StatusFileError(ValueError):
    """The status file exists but cannot be read or understood."""


@dataclass(frozen=True)
class RunRecord:
    """One run as the status file tells it; times are epoch seconds."""

    started: float
    finished: float
    outcome: str
    exit_code: int
    error: str | None
    mode: str
    delivered: int = 0
    withdrawn: int = 0
    skipped_expired: int = 0
    skipped_invalid: int = 0
    requests: int = 0
    rejected_indicators: dict[str, dict[str, int]] = field(default_factory=dict)
    allowlisted_indicators: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, report: Report, exit_code: int = 0, error: str | None = None, outcome: str | None = None
    ) -> RunRecord:
        """The record of a run that ended with ``exit_code`` (0: success) after doing ``report``.

        ``outcome`` is ``success`` or ``failed`` as the exit code says, unless given
        (``interrupted``: a signal stopped the run at a safe point).
        """
        return cls(
            started=report.started, finished=report.finished, outcome=outcome or (FAILED if exit_code else SUCCESS),
            exit_code=exit_code, error=error, mode=report.mode, delivered=report.delivered,
            withdrawn=report.withdrawn, skipped_expired=report.skipped_expired,
            skipped_invalid=report.skipped_invalid, requests=report.requests,
            rejected_indicators=_by_kind_and_reason(report.rejected.items()),
            allowlisted_indicators=dict(sorted(report.allowlisted.items())),
        )

    @property
    def succeeded(self) -> bool:
        return self.outcome == SUCCESS

    @property
    def rejected_total(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.rejected_indicators.values())

    @property
    def allowlisted_total(self) -> int:
        return sum(self.allowlisted_indicators.values())


def _by_kind_and_reason(counts: Iterable[tuple[tuple[str, str], int]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (kind, reason), count in sorted(counts):
        nested.setdefault(kind, {})[reason] = count
    return nested


@dataclass(frozen=True)
class Status:
    """The content of the status file."""

    config: str
    last_run: RunRecord
    last_success: RunRecord | None
    position: str | None
    position_since: float | None
    backfill_until: int | None = None
    backfill_done: int | None = None
    totals: dict[str, int] = field(default_factory=dict)


def record(previous: Status | None, config: str, run: RunRecord, stored: SyncState) -> Status:
    """The status after ``run``, which left ``stored`` in config.ini; ``previous`` is the last status."""
    totals = dict(previous.totals) if previous else {}
    for key in ("runs", "failed_runs", *COUNTS, "requests", *INDICATOR_COUNTS):
        totals.setdefault(key, 0)
    totals["runs"] += 1
    totals["failed_runs"] += 0 if run.succeeded else 1
    for key in (*COUNTS, "requests"):
        totals[key] += getattr(run, key)
    totals["rejected_indicators"] += run.rejected_total
    totals["allowlisted_indicators"] += run.allowlisted_total
    return Status(
        config=config,
        last_run=run,
        last_success=run if run.succeeded else (previous.last_success if previous else None),
        position=stored.position,
        position_since=_position_since(previous, stored.position, run.finished),
        backfill_until=stored.backfill_until,
        backfill_done=stored.backfill_done,
        totals=totals,
    )


def _position_since(previous: Status | None, position: str | None, now: float) -> float | None:
    """Since when ``position`` has been the stored one: carried over while it does not change."""
    if position is None:
        return None
    if previous is not None and previous.position == position and previous.position_since is not None:
        return previous.position_since
    return now


def read(path: str) -> Status | None:
    """The status file at ``path``; None if there is none. Raises StatusFileError if it is unusable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StatusFileError(f"cannot read the status file {path}: {_reason(exc)}") from None
    try:
        return _decode(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StatusFileError(f"the status file {path} is not one phishme-intel wrote ({exc!r})") from None


def write(path: str, status: Status) -> None:
    """Replace the status file atomically. Raises OSError with the old file left as it was."""
    write_atomic(path, (json.dumps(_encode(status), indent=2) + "\n").encode("utf-8"))


def _epoch(text: str | None) -> float | None:
    return None if text is None else dt.datetime.fromisoformat(text).timestamp()


def _encode(status: Status) -> dict[str, Any]:
    def run(record: RunRecord | None) -> dict[str, Any] | None:
        if record is None:
            return None
        fields = asdict(record)
        fields.update(started=iso(record.started), finished=iso(record.finished),
                      duration_seconds=round(round(record.finished, 3) - round(record.started, 3), 3))
        return fields

    backfill = None
    if status.backfill_until is not None:
        backfill = {"until": iso(status.backfill_until),
                    "done": None if status.backfill_done is None else iso(status.backfill_done)}
    return {
        "schema": SCHEMA,
        "config": status.config,
        "last_run": run(status.last_run),
        "last_success": run(status.last_success),
        "position": status.position,
        "position_since": None if status.position_since is None else iso(status.position_since),
        "backfill": backfill,
        "totals": status.totals,
    }


def _decode(data: dict[str, Any]) -> Status:
    if data.get("schema") != SCHEMA:
        raise ValueError(f"schema {data.get('schema')!r}, not {SCHEMA}")

    def run(fields: dict[str, Any] | None) -> RunRecord | None:
        if fields is None:
            return None
        values = {_RENAMED.get(key, key): value for key, value in fields.items() if key != "duration_seconds"}
        values.update(started=_epoch(fields["started"]), finished=_epoch(fields["finished"]))
        return RunRecord(**values)

    last_run = run(data["last_run"])
    if last_run is None:
        raise ValueError("no last_run")
    backfill = data.get("backfill") or {}
    until, done = _epoch(backfill.get("until")), _epoch(backfill.get("done"))
    return Status(
        config=data["config"],
        last_run=last_run,
        last_success=run(data.get("last_success")),
        position=data.get("position"),
        position_since=_epoch(data.get("position_since")),
        backfill_until=None if until is None else int(until),
        backfill_done=None if done is None else int(done),
        totals={_RENAMED.get(key, key): int(value) for key, value in data.get("totals", {}).items()},
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return f"not JSON ({exc})"
