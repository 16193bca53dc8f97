"""Threat parsing and indicator gate timing: ``.venv/bin/python bench/gate.py`` (``--help`` for the options).

Renders the threats of the realistic W1 (10,000 malware + 2,000 phish threats, the
simulator's ``realistic`` profile, seed 1), decodes them beforehand, then times, in CPU
seconds of this process, :func:`~phishme_intel.models.parse_threat` and the gate over each
threat's values (:attr:`~phishme_intel.models.Threat.indicators`), as a backfill does them
(with the sync's cycle collector thresholds).
The verdict cache is emptied before each round, so every round starts as a run does. Prints
the best of ``--repeat`` rounds and the microseconds per indicator value. ``--warninglists``
allow-lists MISP's default warning lists (:data:`~phishme_intel.models.allowlist.DEFAULT_WARNINGLISTS`,
needs ``pymispwarninglists``), so each indicator is also checked against them.
"""

from __future__ import annotations

import argparse
import json
import time

from phishme_intel.models import DEFAULT_GATE, Gate, Threat, parse_threat
from phishme_intel.models.allowlist import DEFAULT_WARNINGLISTS, Allowlist, warninglist_entries
from phishme_intel.models.indicators import cached_verdict
from phishme_intel.simulator.dataset import Dataset
from phishme_intel.simulator.threats import PROFILES
from phishme_intel.sync import _rare_cycle_collection


def threats(malware: int, phish: int, profile: str) -> list[tuple[dict, str]]:
    """The decoded threats of the dataset and their JSON texts, in the order a backfill reads them."""
    dataset = Dataset(seed=1, malware=malware, phish=phish, prerender=True, profile=PROFILES[profile])
    _, documents = dataset.search_json(0, 2**62, "all", 0, malware + phish)
    texts = [document.decode() for document in documents]
    return [(json.loads(text), text) for text in texts]


def one_round(decoded: list[tuple[dict, str]], gate: Gate) -> tuple[float, float, int, int]:
    """CPU seconds to parse the threats and to gate their values; values sent and indicators kept."""
    cached_verdict.cache_clear()
    started = time.process_time()
    parsed: list[Threat] = [parse_threat(raw, text, gate) for raw, text in decoded]
    parsing = time.process_time() - started
    started = time.process_time()
    kept = sum(len(threat.indicators) for threat in parsed)
    gating = time.process_time() - started
    sent = kept + sum(len(threat.rejected) for threat in parsed)
    return parsing, gating, sent, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--malware", type=int, default=10_000)
    parser.add_argument("--phish", type=int, default=2_000)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="realistic")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warninglists", action="store_true")
    args = parser.parse_args()
    decoded = threats(args.malware, args.phish, args.profile)
    gate = Gate(allowlist=Allowlist(warninglist_entries(DEFAULT_WARNINGLISTS))) if args.warninglists else DEFAULT_GATE
    with _rare_cycle_collection():
        rounds = [one_round(decoded, gate) for _ in range(args.repeat)]
    parsing = min(round_[0] for round_ in rounds)
    gating = min(round_[1] for round_ in rounds)
    _, _, sent, kept = rounds[0]
    listed = f", {len(gate.allowlist):,} allow-list entries" if gate.allowlist else ""
    print(f"{len(decoded):,} threats ({args.profile}{listed}), {kept:,} indicators kept, "
          f"{sent - kept:,} values rejected; best of {args.repeat} rounds, CPU seconds")
    print(f"  parse_threat     {parsing:6.3f} s  {parsing / len(decoded) * 1e6:7.2f} us per threat")
    print(f"  gate+extraction  {gating:6.3f} s  {gating / kept * 1e6:7.2f} us per indicator")


if __name__ == "__main__":
    main()
