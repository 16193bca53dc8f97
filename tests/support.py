"""Helpers the test modules share: config files, the CLI as a subprocess, reading the store."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import pty
import sqlite3
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from configupdater import ConfigUpdater

from phishme_intel.config import ApiSettings
from phishme_intel.models import Threat, parse_threat
from phishme_intel.simulator import Dataset

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.ini.example"
USER = "analyst"
PASSWORD = "pw-Zq9%s3cr3t&x"  # a % and a & to catch interpolation and URL-encoding slips
T = TypeVar("T")


def days_ago(days: int) -> str:
    """An ``init_date`` value ``days`` days back."""
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def config_from_example(folder: Path, **sections: dict[str, str]) -> Path:
    """``folder/config.ini`` (mode 600): config.ini.example with ``sections`` applied (the benchmarks use it too).

    ``config_from_example(tmp, pm_api={"concurrency": "2"}, integration_x={"use": "True"})``;
    a section that does not exist is added at the end.
    """
    updater = ConfigUpdater()
    updater.read(EXAMPLE)
    for name, values in sections.items():
        if not updater.has_section(name):
            updater.add_section(name)
        for key, value in values.items():
            updater[name][key] = value
    path = folder / "config.ini"
    path.write_text(str(updater))
    os.chmod(path, 0o600)
    return path


def write_config(folder: Path, base_url: str, **sections: dict[str, str]) -> Path:
    """:func:`config_from_example` with the simulator's URL and credentials, fast retries, and ``sections``."""
    defaults = {
        "base_url": base_url, "user": USER, "pass": PASSWORD, "init_date": days_ago(25),
        "retry_backoff": "0.01", "max_requests_per_second": "0", "timeout": "5", "max_retries": "3",
    }
    return config_from_example(folder, **{**sections, "pm_api": {**defaults, **sections.get("pm_api", {})}})


def api_settings(base_url: str, **changes: Any) -> ApiSettings:
    """ApiSettings for the simulator at ``base_url``, ``changes`` applied.

    Fast retries, no rate limit, and a timeout no answer of a busy machine reaches, so that
    every retry a test counts is the doing of the fault it injected.
    """
    values: dict[str, Any] = {
        "base_url": base_url, "user": USER, "password": PASSWORD, "verify": True,
        "init_date": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "results_per_page": 100, "window_hours": 24,
        "max_retries": 3, "retry_backoff": 0.05, "timeout": 30.0, "expired_threat_days": 0, "concurrency": 2,
        "max_requests_per_second": 0, "malware": True, "phish": True,
    }
    return ApiSettings(**{**values, **changes})


def set_api_options(config: Path, **values: str) -> None:
    """Set ``[pm_api]`` keys in ``config``, every other byte kept."""
    updater = ConfigUpdater()
    updater.read(config)
    for key, value in values.items():
        updater["pm_api"][key] = value
    updater.update_file()


def cli_command(config: Path, *args: str) -> list[str]:
    """``python phishme_to_product.py -conf config *args`` (with ``--allow-root`` when the tests run as root)."""
    root = ["--allow-root"] if os.geteuid() == 0 else []
    return [sys.executable, str(ROOT / "phishme_to_product.py"), "-conf", str(config), *root, *args]


def run_cli(
    config: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as a real process, to completion; ``env`` is added to this process's environment."""
    return subprocess.run(
        cli_command(config, *args),
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})},
    )


def run_cli_on_a_terminal(
    config: Path, *args: str, answer: str | None = None, timeout: float = 60, columns: int = 120
) -> tuple[int, str, float]:
    """The CLI with a ``columns`` x 40 terminal as stdin, stdout and stderr, ``answer`` typed at its prompt.

    Returns its exit code, everything it wrote, and how long it ran.
    """
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    started = time.monotonic()
    process = subprocess.Popen(cli_command(config, *args), stdin=follower, stdout=follower, stderr=follower, cwd=ROOT)
    os.close(follower)
    if answer is not None:
        os.write(leader, answer.encode() + b"\n")
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(timeout=timeout), output.decode(), time.monotonic() - started


def store(path: Path) -> dict[str, object]:
    """What the SQLite store holds: threat keys, indicator rows and tombstones."""
    with sqlite3.connect(path) as db:
        return {
            "threats": {(kind, tid) for kind, tid in db.execute("SELECT threat_type, threat_id FROM threats")},
            "indicators": db.execute("SELECT count(*) FROM indicators").fetchone()[0],
            "duplicate_indicators": db.execute(
                "SELECT count(*) FROM (SELECT 1 FROM indicators GROUP BY threat_type, threat_id, kind, value "
                "HAVING count(*) > 1)"
            ).fetchone()[0],
            "deleted": {(kind, tid) for kind, tid in db.execute("SELECT threat_type, threat_id FROM deleted_threats")},
        }


#: The indicator rows a store lists, and those its history says it lists: always the same.
LISTED = "SELECT threat_type, threat_id, kind, value FROM indicators ORDER BY 1, 2, 3, 4"
LISTED_IN_HISTORY = (
    "SELECT threat_type, threat_id, kind, value FROM indicator_history WHERE withdrawn_at IS NULL ORDER BY 1, 2, 3, 4"
)


def contents(database: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row a user can see in the store, in a stable order (tombstone times left out)."""
    with sqlite3.connect(database) as db:
        return {
            "threats": db.execute("SELECT * FROM threats ORDER BY threat_type, threat_id").fetchall(),
            "indicators": db.execute(
                "SELECT * FROM indicators ORDER BY threat_type, threat_id, kind, value"
            ).fetchall(),
            "deleted": db.execute(
                "SELECT threat_type, threat_id FROM deleted_threats ORDER BY threat_type, threat_id"
            ).fetchall(),
            "listed": db.execute(LISTED).fetchall(),
            "listed_in_history": db.execute(LISTED_IN_HISTORY).fetchall(),
        }


def sample_threats(malware: int = 6, phish: int = 3, seed: int = 3) -> list[Threat]:
    """Realistic parsed threats of both kinds, from the simulator's generator."""
    dataset = Dataset(seed=seed, malware=malware, phish=phish, days=5)
    return [parse_threat(dataset.threat(kind, tid)) for kind, tid in sorted(dataset.live_ids())]


class Unprivileged:
    """Runs the CLI so that file permission bits apply to it.

    As root that means without the capabilities that override them (``setpriv`` drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set); any other user is
    subject to them anyway.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def run(self, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
        command = [*prefix, *cli_command(config, *args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


# Runs the CLI with a profile hook that pauses it when a given function of ours is first
# called: it creates the file READY, then waits until the file GO exists; meanwhile, once a
# signal has asked the run to stop (phishme_intel.interrupts), it creates the file HEARD.
# The test decides what happens meanwhile, so two real processes meet at exactly that point.
PAUSER = """
import os, sys, time

where, ready, go, heard = (os.environ[name] for name in ("PAUSE_AT", "PAUSE_READY", "PAUSE_GO", "PAUSE_HEARD"))


def profile(frame, kind, arg):
    if kind == "call" and f"{frame.f_globals.get('__name__')}.{frame.f_code.co_name}" == where:
        sys.setprofile(None)
        from phishme_intel import interrupts
        open(ready, "w").close()
        while not os.path.exists(go):
            if interrupts.requested() is not None and not os.path.exists(heard):
                open(heard, "w").close()
            time.sleep(0.01)


sys.setprofile(profile)
from phishme_intel.cli import main

sys.exit(main())
"""


def start_paused_at(config: Path, where: str, folder: Path, *args: str) -> subprocess.Popen[str]:
    """The CLI as a process that pauses at the first call of ``where`` (``module.function``).

    It creates ``folder/ready`` when it pauses, ``folder/heard`` once a signal asked it to stop,
    and goes on when ``folder/go`` exists.
    """
    python, _script, *arguments = cli_command(config, *args)
    environment = {
        **os.environ, "PAUSE_AT": where,
        **{f"PAUSE_{name.upper()}": str(folder / name) for name in ("ready", "go", "heard")},
    }
    return subprocess.Popen(
        [python, "-c", PAUSER, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env=environment,
    )


def wait_until(condition: Callable[[], T], what: str, timeout: float = 60) -> T:
    """Poll ``condition`` until it holds, and return what it returned; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return result


def http_get(url: str) -> tuple[int, str]:
    """The status and body of ``GET url``, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
