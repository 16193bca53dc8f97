"""What each adapter costs: ``.venv/bin/python bench/adapters.py`` (``--help`` for the options).

The realistic W1 backfill (10,000 malware + 2,000 phish threats, 0 ms latency) into the
SQLite store alone, then with each other adapter on beside it (``max_eps = 0``), then with
all of them on; and, all on, the scale pair (5,000 and 50,000 threats) for memory. Each run
is the real sync as a process in a fresh folder (kept until the benchmark ends: see
:func:`harness.scratch`) against one simulator process: JSON files
and STIX bundles go to that folder, CEF over TCP to a receiver in this process that reads
and drops every byte, Splunk HEC events to a collector in this process that answers every
batch with success. One table row per run: wall and CPU time, peak RSS, and the time added
to the SQLite-only backfill. Then the targets of docs/performance.rst are checked.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from configupdater import ConfigUpdater
from harness import BenchSimulator, SyncRun, Workload, megabytes, run_sync, scratch, write_config
from run import machine

W1 = Workload("W1", 10_000, 2_000, 0)
SCALE = (Workload("scale", 4_167, 833, 0), Workload("scale", 41_667, 8_333, 0))
ADAPTERS = ("json_files", "blocklists", "cef_syslog", "stix2", "splunk_hec")
TOKEN = "bench-hec-token"


@dataclass(frozen=True)
class Row:
    label: str
    threats: int
    run: SyncRun


class _Collector(BaseHTTPRequestHandler):
    """Splunk HEC stand-in: reads each batch and answers success."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the answer's headers and body are two writes; with Nagle the body waited for the
    # client's delayed ACK of the headers (~40 ms a batch), a stall of this stand-in, not of the adapter
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"text":"Success","code":0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def receivers() -> Iterator[tuple[int, int]]:
    """(CEF TCP port, HEC port) of a syslog sink and a collector on 127.0.0.1, for the block's time."""
    sink = socket.create_server(("127.0.0.1", 0))
    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    collector.daemon_threads = True

    def drain() -> None:
        while True:
            try:
                connection, _ = sink.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=connection: _discard(c), daemon=True).start()

    threading.Thread(target=drain, daemon=True).start()
    threading.Thread(target=collector.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield sink.getsockname()[1], collector.server_address[1]
    finally:
        sink.close()
        collector.shutdown()
        collector.server_close()


def _discard(connection: socket.socket) -> None:
    with connection:
        while connection.recv(1 << 16):
            pass


def configure(config: Path, adapters: Sequence[str], cef_port: int, hec_port: int) -> None:
    """Turn ``adapters`` on in ``config`` (the SQLite store is on already), every output in its folder."""
    updater = ConfigUpdater()
    updater.read(config)
    work = config.parent
    settings = {
        "json_files": {"folder": str(work / "json"), "jsonl_file": str(work / "events.jsonl")},
        "blocklists": {"folder": str(work / "blocklists"), "sqlite_path": str(work / "phishme_intel.sqlite3")},
        "cef_syslog": {"transport": "tcp", "host": "127.0.0.1", "port": str(cef_port), "max_eps": "0"},
        "stix2": {"folder": str(work / "stix2")},
        "splunk_hec": {"url": f"http://127.0.0.1:{hec_port}", "token": TOKEN},
    }
    updater["integration_sqlite"]["path"] = str(work / "phishme_intel.sqlite3")
    for name in adapters:
        section = updater[f"integration_{name}"]
        section["use"] = "True"
        for key, value in settings[name].items():
            section[key] = value
    config.write_text(str(updater))


def backfill(simulator: BenchSimulator, adapters: Sequence[str], ports: tuple[int, int], work: Path) -> SyncRun:
    """One backfill with the SQLite store and ``adapters`` into the empty folder ``work``."""
    config = write_config(work, simulator.url, 4, 0)
    configure(config, adapters, *ports)
    return run_sync(config, simulator)


def measure(profile: str, repeat: int, scale: bool) -> list[Row]:
    """The rows of the table, each the fastest of ``repeat`` runs (taking turns round after round)."""
    setups = [("SQLite alone", ()), *((f"+ {name}", (name,)) for name in ADAPTERS), ("all on", ADAPTERS)]
    rows: list[Row] = []
    with receivers() as ports, scratch("phishme-bench-adapters-") as folder:
        with BenchSimulator(folder("sim-"), W1, profile, None) as simulator:
            runs: list[list[SyncRun]] = [[] for _ in setups]
            for attempt in range(repeat):
                for (label, adapters), done in zip(setups, runs, strict=True):
                    print(f"  W1 {label}, run {attempt + 1} of {repeat}", file=sys.stderr, flush=True)
                    done.append(backfill(simulator, adapters, ports, folder("run-")))
            rows += [Row(label, W1.threats, min(done, key=lambda run: run.wall))
                     for (label, _), done in zip(setups, runs, strict=True)]
        for workload in SCALE if scale else ():
            print(f"  scale {workload.threats} all on", file=sys.stderr, flush=True)
            with BenchSimulator(folder("sim-"), workload, profile, None) as simulator:
                rows.append(Row("all on", workload.threats, backfill(simulator, ADAPTERS, ports, folder("run-"))))
    return rows


def table(rows: Sequence[Row]) -> str:
    base = rows[0].run.wall
    lines = [("adapters", "threats", "wall s", "CPU s", "peak RSS MiB", "added to SQLite alone")]
    for row in rows:
        added = f"{(row.run.wall / base - 1) * 100:+.0f} %" if row.threats == rows[0].threats else ""
        lines.append((row.label, f"{row.threats:,}", f"{row.run.wall:.2f}", f"{row.run.cpu:.2f}",
                      f"{row.run.peak_rss_mib:.0f}", added))
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    rule = "  ".join("=" * width for width in widths)
    text = [rule, "  ".join(cell.ljust(width) for cell, width in zip(lines[0], widths, strict=True)), rule]
    text += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines[1:]]
    return "\n".join([*text, rule])


def verdicts(rows: Sequence[Row]) -> list[str]:
    base = rows[0].run.wall
    w1 = [row for row in rows if row.threats == W1.threats]
    single = [row for row in w1 if row.label.startswith("+ ")]
    together = next(row for row in w1 if row.label == "all on")
    worst = max(single, key=lambda row: row.run.wall)
    lines = [
        _verdict(worst.run.wall <= 1.5 * base,
                 f"each adapter adds at most 50 % (worst: {worst.label[2:]}, {worst.run.wall / base - 1:+.0%})"),
        _verdict(together.run.wall <= 2 * base, f"all on adds at most 100 % ({together.run.wall / base - 1:+.0%})"),
        _verdict(megabytes(together.run.peak_rss_mib) <= 100, f"peak RSS all on at most 100 MB "
                 f"({together.run.peak_rss_mib:.0f} MiB = {megabytes(together.run.peak_rss_mib):.1f} MB)"),
    ]
    scale = [row for row in rows if row.threats != W1.threats]
    if len(scale) == 2:
        small, large = scale
        ratio = large.run.peak_rss_mib / small.run.peak_rss_mib
        lines.append(_verdict(ratio <= 1.2, f"50,000 threats all on peak at most 1.2 x 5,000's ({ratio:.2f} x)"))
    return lines


def _verdict(met: bool, text: str) -> str:
    return f"{'met    ' if met else 'NOT MET'}  {text}"


def main(argv: Sequence[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--profile", default="realistic", help="the simulator's threat profile (default realistic)")
    options.add_argument("--repeat", type=int, default=1, help="runs per row; the fastest is shown")
    options.add_argument("--no-scale", action="store_true", help="leave out the 5,000 / 50,000 memory pair")
    args = options.parse_args(argv)
    rows = measure(args.profile, args.repeat, not args.no_scale)
    print(f"Measured on {machine()}; {args.profile} threats, concurrency 4, no rate limit, "
          f"the fastest of {args.repeat} run(s) per row.\n")
    print(table(rows))
    print()
    print("\n".join(verdicts(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
