"""A throwaway PostgreSQL cluster for the tests, from the machine's own PostgreSQL binaries.

:class:`Cluster` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin``
(the newest there; ``PHISHME_PG_BIN`` names another folder), with its data in a temporary
folder, listening on 127.0.0.1 only, on a free port, with password (SCRAM) authentication
over TCP and no Unix socket outside its folder. PostgreSQL refuses to run as root: when the
tests run as root, the cluster runs as ``nobody`` (``runuser``), which owns the folder.
Each test gets a database of its own (:meth:`Cluster.database`).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

SUPERUSER = "postgres"
UNPRIVILEGED = "nobody"


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def server_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``; raises PostgresMissing when there is none."""
    chosen = os.environ.get("PHISHME_PG_BIN")
    found = [chosen] if chosen else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version)
    for folder in reversed(found):
        if os.access(os.path.join(folder, "initdb"), os.X_OK) and os.access(os.path.join(folder, "pg_ctl"), os.X_OK):
            return Path(folder)
    raise PostgresMissing("no initdb and pg_ctl under /usr/lib/postgresql/*/bin (Debian package postgresql)")


def _version(folder: str) -> int:
    number = Path(folder).parent.name
    return int(number) if number.isdigit() else 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A PostgreSQL server of our own: :meth:`start`, then databases, then :meth:`stop`."""

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.password = secrets.token_urlsafe(16)
        self.folder = Path(tempfile.mkdtemp(prefix="phishme-pg-"))
        self.data = self.folder / "data"
        self.port = 0
        self._databases = 0
        self._as_root = os.geteuid() == 0
        if self._as_root:
            account = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.folder, account.pw_uid, account.pw_gid)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._as_root:
            command = ["runuser", "-u", UNPRIVILEGED, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.folder)
        if result.returncode != 0:
            log = self.folder / "server.log"
            detail = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr}{result.stdout}{detail}")

    def start(self) -> Cluster:
        """initdb, then start the server on a free port; waits until it accepts connections."""
        password_file = self.folder / "superuser-password"
        password_file.write_text(self.password)
        if self._as_root:
            os.chown(password_file, pwd.getpwnam(UNPRIVILEGED).pw_uid, -1)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={password_file}", "--auth-host=scram-sha-256",
            "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        password_file.unlink()
        for attempt in range(5):  # another process may take the free port before the server does
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} "
                "-c fsync=off -c synchronous_commit=on -c max_connections=60"
            )
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-o", options,
                          "start")
                return self
            except RuntimeError:
                if attempt == 4:
                    raise
        return self

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def conninfo(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        """A libpq connection string for ``dbname`` (no password in it)."""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """A superuser connection to ``dbname``, in autocommit mode."""
        return psycopg.connect(self.conninfo(dbname), password=self.password, autocommit=True)

    def database(self) -> str:
        """A new, empty database; returns its name."""
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        with self.connect() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name
