"""``--dry-run``: the whole fetch and transform of a run, with nothing written anywhere.

The sync engine runs unchanged; it is handed substitutes instead of the real parts that
write: a :class:`Preview` destination in place of the adapters (they are not even opened,
so no product is touched) and a :class:`RecordingCheckpoint` that notes the states the
engine would store instead of writing config.ini. The log goes to stderr, never to the log
file; there is no lock, no status or metrics file and no jitter wait. Every file is left
byte for byte as it was.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import config as config_module
from .adapters.base import Adapter
from .client import ApiClient
from .config import SyncState
from .logs import logging_to
from .models import Threat, ThreatRef
from .sync import Report, synchronize

log = logging.getLogger("phishme_intel")


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


def dry_run(
    config_path: str, *, verbose: bool = False, on_progress: Callable[[Report], None] | None = None
) -> DryRun:
    """Fetch and transform as a run would, write nothing; returns what it would have delivered and stored."""
    config = config_module.load(config_path)
    level = config.log_level if verbose else "warning"
    with logging_to(None, level, config.secrets, verbose=True):
        for warning in config.warnings:
            log.warning("config: %s", warning)
        log.info("dry run started (config %s): nothing will be written", config.path)
        client = ApiClient(config.api, config.proxy)
        preview, checkpoint = Preview(), RecordingCheckpoint()
        try:
            report = synchronize(client, [preview], checkpoint, config.api, config.state, on_progress)
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


def describe(result: DryRun) -> str:
    """What the dry run found, for a person."""
    report = result.report
    adapters = ", ".join(result.adapters) or "no adapter"
    delivered = sum(result.threats.values())
    lines = [
        f"dry run of {result.config} ({report.mode}): nothing was written",
        f"would deliver {delivered:,} threats ({_by_kind(result.threats)}) "
        f"with {sum(result.indicators.values()):,} indicators to {adapters}",
    ]
    if result.indicators:
        lines.append(f"  indicators: {_by_kind(result.indicators)}")
    lines.append(f"would withdraw {sum(result.withdrawn.values()):,} threats ({_by_kind(result.withdrawn)})")
    lines.append(f"would skip {report.skipped_expired:,} as expired, {report.skipped_invalid:,} as invalid")
    lines.append(f"would store {_state(result.would_store)}")
    lines.append(f"{report.requests:,} requests in {report.finished - report.started:.1f} s")
    return "\n".join(lines)


def _by_kind(counts: Counter[str]) -> str:
    return ", ".join(f"{count:,} {kind}" for kind, count in counts.most_common()) or "none"


def _state(state: SyncState | None) -> str:
    if state is None:
        return "nothing: the stored position stays as it is"
    if state.position:
        return f"position {state.position}"
    return f"backfill checkpoint {state.backfill_done} of {state.backfill_until}"
