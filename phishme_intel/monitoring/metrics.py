"""The status file's facts as a Prometheus metrics file, for the node-exporter textfile collector.

Written atomically after every run, beside the status file (``[local_status] metrics_file``);
it never holds a secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..files import write_atomic
from .status_file import COUNTS, Status


def write(path: str, status: Status) -> None:
    """Replace the metrics file atomically with :func:`metrics`. Raises OSError."""
    write_atomic(path, metrics(status).encode("utf-8"))


@dataclass(frozen=True)
class Family:
    """One Prometheus metric family: its name (without the ``phishme_intel_`` prefix), type, help, samples."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]]


def families(status: Status) -> list[Family]:
    """The metrics of ``status``: what the metrics file holds and what ``--listen`` serves on /metrics."""
    success = status.last_success.finished if status.last_success else 0
    totals = status.totals
    return [
        Family("last_success_timestamp_seconds", "gauge",
               "When the last successful run ended (Unix time; 0: none yet).", [({}, success)]),
        Family("last_run_timestamp_seconds", "gauge", "When the last run ended (Unix time).",
               [({}, status.last_run.finished)]),
        Family("last_run_duration_seconds", "gauge", "How long the last run took.",
               [({}, status.last_run.finished - status.last_run.started)]),
        Family("last_exit_code", "gauge", "The exit code of the last run (0: success).",
               [({}, status.last_run.exit_code)]),
        Family("threats_total", "counter", "Threats handled by all runs since the status file was created, by action.",
               [({"action": key}, totals.get(key, 0)) for key in COUNTS]),
        Family("requests_total", "counter", "API requests made by all runs since the status file was created.",
               [({}, totals.get("requests", 0))]),
        Family("runs_total", "counter", "Runs since the status file was created, by outcome.",
               [({"outcome": "success"}, totals.get("runs", 0) - totals.get("failed_runs", 0)),
                ({"outcome": "failed"}, totals.get("failed_runs", 0))]),
        Family("backfill_in_progress", "gauge", "1 while a backfill is unfinished, else 0.",
               [({}, 1 if status.backfill_until is not None else 0)]),
        Family("last_run_rejected_indicators", "gauge",
               "Values of the threats the last run delivered that the indicator gate turned away, by kind and reason.",
               [({"kind": kind, "reason": reason}, count)
                for kind, reasons in status.last_run.rejected_indicators.items() for reason, count in reasons.items()]),
        Family("last_run_allowlisted_indicators", "gauge",
               "Allow-listed indicators of the threats the last run delivered (emitted by no adapter), by kind.",
               [({"kind": kind}, count) for kind, count in status.last_run.allowlisted_indicators.items()]),
        Family("indicators_total", "counter",
               "Indicator values of delivered threats by all runs since the status file was created, by verdict.",
               [({"verdict": "rejected"}, totals.get("rejected_indicators", 0)),
                ({"verdict": "allowlisted"}, totals.get("allowlisted_indicators", 0))]),
    ]


def metrics(status: Status) -> str:
    """``status`` in the Prometheus text exposition format (version 0.0.4)."""
    lines = []
    for family in families(status):
        name = f"phishme_intel_{family.name}"
        lines += [f"# HELP {name} {family.help}", f"# TYPE {name} {family.kind}"]
        for labels, value in family.samples:
            text = ",".join(f'{key}="{label}"' for key, label in labels.items())
            lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
