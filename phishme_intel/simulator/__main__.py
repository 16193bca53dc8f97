"""Run the simulator as a process: ``python -m phishme_intel.simulator --help``.

Prints ``simulator listening on URL`` once listening, writes the port to ``--port-file``
(atomically) if given, and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from ..files import write_atomic
from . import Dataset, Simulator
from .threats import PROFILES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m phishme_intel.simulator", description="Serve a fake Cofense Intelligence API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--malware", type=int, default=500, help="malware threats")
    parser.add_argument("--phish", type=int, default=100, help="phish threats")
    parser.add_argument("--days", type=int, default=30, help="spread of publication dates")
    parser.add_argument(
        "--profile", choices=PROFILES, default="compact",
        help="threat sizes: compact (small, the default) or realistic (shaped like the vendor's, see bench/README.md)",
    )
    parser.add_argument("--detections", type=int, help="vendorDetections per executable (default: the profile's)")
    parser.add_argument(
        "--prerender", action="store_true",
        help="render every threat's JSON before listening and on each change (fast answers, more memory)",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every API answer")
    parser.add_argument("--updates-page-size", type=int, default=1000, help="changelog entries per answer")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="demo")
    parser.add_argument("--port-file", help="write the port here once listening")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit code."""
    args = _parser().parse_args(argv)
    dataset = Dataset(
        seed=args.seed,
        malware=args.malware,
        phish=args.phish,
        days=args.days,
        detections=args.detections,
        prerender=args.prerender,
        profile=PROFILES[args.profile],
    )
    # Blocked here, so in every server thread too (they inherit the mask): only sigwait sees them.
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    with Simulator(
        dataset,
        user=args.user,
        password=args.password,
        latency=args.latency_ms / 1000,
        updates_page_size=args.updates_page_size,
        host=args.host,
        port=args.port,
    ) as simulator:
        if args.port_file:
            write_atomic(args.port_file, f"{urlsplit(simulator.url).port}\n".encode())
        print(f"simulator listening on {simulator.url}", flush=True)
        signal.sigwait(signals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
