"""``phishme-intel -conf config.ini``: a thin layer over :mod:`phishme_intel.job`.

Each flag calls one library function. This is the one place where errors become words
and exit codes: an :class:`~phishme_intel.errors.Error` prints its message (no traceback)
to stderr and exits with its code; anything else prints one line, leaves the traceback in
the log file, and exits 1. Success prints nothing unless stdout is a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import job
from .errors import Error, LockHeld
from .version import __version__

ROOT_REFUSED = 77


def parser() -> argparse.ArgumentParser:
    """The command line: ``-conf PATH`` and the flags."""
    cli = argparse.ArgumentParser(
        prog="phishme-intel",
        description="Sync Cofense (PhishMe) Intelligence threats into your security products.",
    )
    cli.add_argument("-conf", "--config", required=True, metavar="PATH", help="the config.ini to use")
    cli.add_argument("--check", action="store_true", help="validate the config and test the API connection; no sync")
    cli.add_argument("-v", "--verbose", action="store_true", help="also write the log to stderr")
    cli.add_argument("--allow-root", action="store_true", help="run even as root (not recommended)")
    cli.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = parser().parse_args(argv)
    if os.geteuid() == 0 and not args.allow_root:
        print(
            "phishme-intel: refusing to run as root; run it as an unprivileged user that owns "
            "config.ini, or pass --allow-root",
            file=sys.stderr,
        )
        return ROOT_REFUSED
    try:
        if args.check:
            config = job.check(args.config, verbose=args.verbose)
            for warning in config.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(f"OK: {args.config} is valid and {config.api.base_url} accepts user {config.api.user}")
            print(f"adapters: {', '.join(config.adapters) or 'none'}")
            return 0
        report = job.run(args.config, verbose=args.verbose)
    except LockHeld as exc:
        if args.verbose or sys.stderr.isatty():
            print(f"phishme-intel: {exc}", file=sys.stderr)
        return exc.exit_code
    except Error as exc:
        print(f"phishme-intel: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # the one place an unexpected error becomes an exit code
        print(f"phishme-intel: unexpected {type(exc).__name__}; the traceback is in the log file", file=sys.stderr)
        return 1
    if sys.stdout.isatty():
        print(
            f"{report.mode}: {report.delivered} delivered, {report.withdrawn} withdrawn, "
            f"{report.skipped_expired + report.skipped_invalid} skipped in {report.finished - report.started:.1f} s"
        )
    return 0
