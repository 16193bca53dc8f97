"""``phishme-intel -conf config.ini``: a thin layer over the library.

Each flag calls one library function (:mod:`phishme_intel.commands`)
and prints what it returns. This is the one place where errors become words and exit codes:
an :class:`~phishme_intel.errors.Error` prints its message (no traceback) to stderr and exits
with its code; anything else prints one line, leaves the traceback in the log file, and
exits 1. A run prints nothing unless it has a terminal: under cron stdout stays empty.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from . import commands, lookup, memory
from .config import understood
from .errors import Error, Interrupted, LockHeld
from .logs import shown
from .monitoring import health
from .monitoring.progress import ProgressLine
from .options import instant, interval, listen_address
from .version import __version__

ROOT_REFUSED = 77
USAGE = 2
NOT_FOUND = 1
T = TypeVar("T")


def parser() -> argparse.ArgumentParser:
    """The command line: ``-conf PATH`` and the flags."""
    cli = argparse.ArgumentParser(
        prog="phishme-intel",
        description="Sync Cofense (PhishMe) Intelligence threats into your security products.",
    )
    cli.add_argument("-conf", "--config", required=True, metavar="PATH", help="the config.ini to use")
    action = cli.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="validate the config and test the API connection; no sync")
    action.add_argument("--status", action="store_true",
                        help="show how the last runs went; exit 0 healthy, 1 failing, 2 stale, 3 unknown")
    action.add_argument("--dry-run", action="store_true",
                        help="fetch and transform as a run would, report what it would deliver, write nothing")
    action.add_argument("--reset", action="store_true",
                        help="clear the stored position so the next run backfills again (asks first)")
    cli.add_argument("--every", type=_option(interval), metavar="INTERVAL",
                     help="run as a service: sync now, then every INTERVAL (30s, 15m, 1h) until SIGTERM or SIGINT")
    cli.add_argument("--listen", type=_option(listen_address), metavar="HOST:PORT",
                     help="with --every: serve /healthz and /metrics over HTTP (overrides [local_status] listen)")
    cli.add_argument("--since", type=_date, metavar="DATE",
                     help="with --reset: the next backfill starts at DATE instead of init_date")
    cli.add_argument("-y", "--yes", action="store_true", help="with --reset: do not ask for confirmation")
    cli.add_argument("-v", "--verbose", action="store_true", help="also write the log to stderr")
    cli.add_argument("--allow-root", action="store_true", help="run even as root (not recommended)")
    cli.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = cli.add_subparsers(dest="command", metavar="lookup")
    finder = subcommands.add_parser(
        "lookup", help="look indicators up in the store; exit 0 when any matched, 1 when none did",
        description="Look indicators up in the store the config names: exit 0 when any matched, 1 when none did.",
    )
    finder.add_argument("values", nargs="+", metavar="VALUE",
                        help="a value to look up; - reads one per line from stdin")
    finder.add_argument("--json", action="store_true", help="print JSON Lines, one record per match")
    finder.add_argument("--history", action="store_true",
                        help="also show when the store listed each value, from which threat, and when it was withdrawn")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    memory.map_large_buffers()
    cli = parser()
    args = cli.parse_args(argv)
    if args.since is not None and not args.reset:
        cli.error("--since goes with --reset")
    if args.every is not None and (args.check or args.status or args.dry_run or args.reset):
        cli.error("--every runs the sync as a service; it does not go with --check, --status, --dry-run or --reset")
    if args.listen is not None and args.every is None:
        cli.error("--listen goes with --every")
    if args.command == "lookup" and (args.check or args.status or args.dry_run or args.reset or args.every):
        cli.error("lookup goes without --check, --status, --dry-run, --reset and --every")
    if os.geteuid() == 0 and not (args.allow_root or args.status or args.command == "lookup"):
        print(
            "phishme-intel: refusing to run as root; run it as an unprivileged user that owns "
            "config.ini, or pass --allow-root",
            file=sys.stderr,
        )
        return ROOT_REFUSED
    try:
        if args.check:
            return _check(args)
        if args.status:
            return _status(args)
        if args.dry_run:
            return _dry_run(args)
        if args.reset:
            return _reset(args)
        if args.command == "lookup":
            return _lookup(args)
        if args.every is not None:
            return _serve(args)
        return _run(args)
    except LockHeld as exc:
        if args.verbose or sys.stderr.isatty():
            print(f"phishme-intel: {exc}", file=sys.stderr)
        return exc.exit_code
    except Error as exc:
        print(f"phishme-intel: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside a run (which stops at a safe point and raises Interrupted)
        print("phishme-intel: interrupted by SIGINT", file=sys.stderr)
        return Interrupted.exit_code
    except Exception as exc:  # the commands log theirs (unexpected.py): this is one in the CLI itself
        print(f"phishme-intel: unexpected {type(exc).__name__} in the command line: {shown(str(exc))}", file=sys.stderr)
        return 1


def script() -> NoReturn:
    """The process's entry point (``phishme-intel``, ``python -m phishme_intel``, phishme_to_product.py):
    :func:`main`, then exit with its code.

    The objects there are when :func:`main` returns are handed to the cycle collector's
    permanent generation (``gc.freeze``) first: while the interpreter shuts down it collects
    the whole heap again at each step of tearing the modules down, which took 40-90 ms of a
    W1 updates run (bench/run.py; the target is 0.5 s in all), 25 ms with them frozen. They
    are still freed as before; only a reference cycle that is already garbage then is left
    to the end of the process, whose finalizers Python never promises to run at exit (every
    file and connection is closed before :func:`main` returns).
    """
    code = main()
    gc.freeze()
    sys.exit(code)


def _serve(args: argparse.Namespace) -> int:
    """``--every``: the service.

    Imported only here: its HTTP endpoint's prometheus_client and wsgiref take about 25 ms of
    CPU to import, a sixth of what a run from cron spends starting up, and nothing else uses them.
    """
    from .service import Service

    return Service(args.config, args.every, listen=args.listen, verbose=args.verbose).serve()


def _run(args: argparse.Namespace) -> int:
    progress = ProgressLine(sys.stderr) if sys.stderr.isatty() and not args.verbose else None
    try:
        report = commands.run(args.config, verbose=args.verbose, on_progress=progress, jitter=not sys.stdin.isatty())
    finally:
        if progress is not None:
            progress.close()
    if sys.stdout.isatty():
        print(
            f"{report.mode}: {report.delivered} delivered, {report.withdrawn} withdrawn, "
            f"{report.skipped_expired + report.skipped_invalid} skipped in {report.finished - report.started:.1f} s"
        )
    return 0


def _lookup(args: argparse.Namespace) -> int:
    values = [line.strip() for line in sys.stdin if line.strip()] if args.values == ["-"] else args.values
    answers = lookup.lookup(args.config, values, history=args.history)
    for answer in answers:
        for line in lookup.json_lines(answer) if args.json else [lookup.describe(answer)]:
            print(line)
    return 0 if any(answer.found for answer in answers) else NOT_FOUND


def _check(args: argparse.Namespace) -> int:
    config = commands.check(args.config, verbose=args.verbose)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"OK: {args.config} is valid and {config.api.base_url} accepts user {config.api.user}")
    for line in understood.describe(config, dt.datetime.now(dt.timezone.utc)):
        print(line)
    return 0


def _status(args: argparse.Namespace) -> int:
    verdict = commands.status(args.config)
    print(health.describe(verdict))
    return verdict.exit_code


def _dry_run(args: argparse.Namespace) -> int:
    progress = ProgressLine(sys.stderr) if sys.stderr.isatty() and not args.verbose else None
    try:
        result = commands.dry_run(args.config, verbose=args.verbose, on_progress=progress)
    finally:
        if progress is not None:
            progress.close()
    print(commands.describe_dry_run(result))
    return 0


def _reset(args: argparse.Namespace) -> int:
    if not args.yes:
        print(commands.plan_reset(args.config, args.since).describe())
        if not sys.stdin.isatty():
            print("phishme-intel: --reset needs a terminal to ask for confirmation, or --yes", file=sys.stderr)
            return USAGE
        if _answer("Reset? [y/N] ") not in ("y", "yes"):
            print("nothing changed")
            return 0
    done = commands.reset(args.config, args.since, verbose=args.verbose)
    print(f"reset: the next run backfills every threat since {understood.utc(done.backfill_from)}")
    return 0


def _answer(prompt: str) -> str:
    try:
        return input(prompt).strip().lower()
    except EOFError:
        return ""


def _date(raw: str) -> dt.datetime:
    return _option(instant)(raw)


def _option(parse: Callable[[str], T]) -> Callable[[str], T]:
    """A config value parser as an argparse type: its ValueError becomes argparse's message."""

    def argument(raw: str) -> T:
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return argument
