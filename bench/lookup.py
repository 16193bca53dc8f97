"""Lookup timing: ``.venv/bin/python bench/lookup.py`` (``--help`` for the options).

Builds a store of 500,000 indicators (50,000 malware threats of 10 indicators each: URLs,
domains, IPv4 addresses, e-mail addresses, MD5 and SHA-256 hashes) through the real store
adapters, once in SQLite and once in PostgreSQL (the tests' throwaway cluster,
``tests/postgres.py``), then looks 1,000 values up the way ``phishme-intel lookup`` does
(:func:`phishme_intel.lookup.ask`): half of them held, pasted as analysts paste them
(upper-case hashes, URLs without their scheme, defanged hosts), half unknown. Prints the
time of each lookup (the best of ``--repeat``) and checks it against the target: under 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from phishme_intel import lookup
from phishme_intel.adapters.base import Adapter
from phishme_intel.adapters.postgresql import PostgresqlAdapter
from phishme_intel.adapters.sqlite import SqliteAdapter
from phishme_intel.models import Threat, parse_threat

sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))
from postgres import Cluster  # the tests' throwaway cluster, its one home

THREATS = 50_000
VALUES = 1_000
BATCH = 500
NOW = int(time.time() * 1000)


def threat(number: int) -> Threat:
    """Malware threat ``number``: 2 URLs, 2 domains, 2 IPv4, 2 e-mail addresses, an MD5 and a SHA-256."""
    host = f"host{number}.bench-example.com"
    blocks = [
        ("URL", {"url": f"https://{host}/login"}), ("URL", {"url": f"http://{host}/dl/{number}.zip"}),
        ("Domain Name", host), ("Domain Name", f"cdn{number}.bench-example.net"),
        ("IPv4 Address", f"198.{number % 256}.{number // 256 % 256}.{number // 65536 + 1}"),
        ("IPv4 Address", f"203.{number % 256}.{number // 256 % 256}.{number // 65536 + 1}"),
        ("Email", f"drop{number}@{host}"), ("Email", f"billing{number}@{host}"),
    ]
    digest = hashlib.sha256(str(number).encode()).hexdigest()
    return parse_threat({
        "id": number, "threatType": "MALWARE", "label": f"Campaign {number}", "firstPublished": NOW,
        "lastPublished": NOW, "threatDetailURL": f"https://portal.example/m/{number}",
        "blockSet": [{"blockType": kind, "data_1": value, "impact": "Major", "role": "C2"} for kind, value in blocks],
        "executableSet": [{"md5Hex": digest[:32], "sha256Hex": digest, "severityLevel": "Major"}],
    })


def pasted(rng: random.Random) -> list[str]:
    """VALUES values: half held (as an analyst pastes them), half unknown."""
    held = []
    for number in rng.sample(range(1, THREATS + 1), VALUES // 2):
        digest = hashlib.sha256(str(number).encode()).hexdigest()
        held.append(rng.choice([
            digest[:32].upper(), digest, f"host{number}.bench-example.com/login",
            f"cdn{number}[.]bench-example[.]net", f"198.{number % 256}.{number // 256 % 256}.{number // 65536 + 1}",
            f"DROP{number}@host{number}.bench-example.com",
        ]))
    unknown = [f"unknown{number}.example.org" for number in range(VALUES - len(held))]
    return held + unknown


def fill(adapter: Adapter) -> float:
    """Deliver every threat to ``adapter`` in batches, one commit; returns the seconds it took."""
    started = time.perf_counter()
    adapter.open()
    try:
        for start in range(1, THREATS + 1, BATCH):
            adapter.deliver([threat(number) for number in range(start, min(start + BATCH, THREATS + 1))])
        adapter.commit()
    finally:
        adapter.close()
    return time.perf_counter() - started


def timed(adapter: Adapter, values: list[str], repeat: int) -> tuple[float, int]:
    """The best time of ``repeat`` lookups of ``values``, and how many values matched."""
    best, matched = float("inf"), 0
    for _ in range(repeat):
        reader = adapter.reader()
        try:
            started = time.perf_counter()
            answers = lookup.ask(reader, values)
            best = min(best, time.perf_counter() - started)
            matched = sum(answer.found for answer in answers)
        finally:
            reader.close()
    return best, matched


def main(argv: Sequence[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--repeat", type=int, default=3, help="lookups per store; the fastest is shown")
    args = options.parse_args(argv)
    values = pasted(random.Random(11))
    cluster = Cluster().start()
    try:
        with tempfile.TemporaryDirectory(prefix="phishme-bench-") as folder:
            stores: list[tuple[str, Adapter]] = [
                ("sqlite", SqliteAdapter({"path": str(Path(folder) / "store.sqlite3")})),
                ("postgresql", PostgresqlAdapter(
                    {"conninfo": cluster.conninfo(cluster.database()), "pass": cluster.password})),
            ]
            results = []
            for name, adapter in stores:
                print(f"  filling the {name} store with {THREATS * 10:,} indicators", file=sys.stderr, flush=True)
                filled = fill(adapter)
                seconds, matched = timed(adapter, values, args.repeat)
                results.append((name, filled, seconds, matched))
    finally:
        cluster.stop()
    print(f"{VALUES:,} values looked up in a store of {THREATS * 10:,} indicators ({THREATS:,} threats)\n")
    for name, filled, seconds, matched in results:
        verdict = "met    " if seconds < 1 else "NOT MET"
        print(f"{verdict}  {name:<10}  lookup {seconds:.3f} s (< 1 s), {matched} of {VALUES} matched; "
              f"store filled in {filled:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
