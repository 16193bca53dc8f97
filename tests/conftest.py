"""Fixtures: a running API simulator over real loopback HTTP, a config.ini pointing at it, and a
certificate authority for the TLS servers of the tests."""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from postgres import Cluster, PostgresMissing, free_port
from stores import StoreUnderTest, postgres_store
from support import PASSWORD, USER, Unprivileged, write_config

from phishme_intel.simulator import Dataset, Simulator


@pytest.fixture
def dataset() -> Dataset:
    """300 malware and 60 phish threats spread over the last 20 days."""
    return Dataset(seed=7, malware=300, phish=60, days=20)


@pytest.fixture
def simulator(dataset: Dataset) -> Iterator[Simulator]:
    """The simulator serving ``dataset``; changelog pages of at most 200 entries."""
    with Simulator(dataset, user=USER, password=PASSWORD, updates_page_size=200) as sim:
        yield sim


@pytest.fixture
def config(tmp_path: Path, simulator: Simulator) -> Path:
    """A config.ini (from config.ini.example) for ``simulator``, everything else in ``tmp_path``."""
    return write_config(tmp_path, simulator.url)


@pytest.fixture
def unprivileged(tmp_path: Path) -> Unprivileged:
    """The CLI run so that file permission bits apply to it, in ``tmp_path``."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): file permissions cannot bite")
    return Unprivileged(tmp_path)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """The certificate authority of the tests' TLS servers (a test that needs a stranger makes its own)."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """``ca``'s certificate in a PEM file, for a ``ca_bundle`` key."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A TLS server context with a certificate from ``ca`` for ``localhost`` and ``127.0.0.1``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL server of the tests' own on 127.0.0.1, for the whole session (see postgres.py)."""
    try:
        cluster = Cluster()
    except PostgresMissing as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def pg_store(postgres: Cluster) -> StoreUnderTest:
    """A new, empty database of ``postgres``; the broken store is a port nobody listens on."""
    return postgres_store(
        postgres.conninfo(postgres.database()), postgres.password,
        f"host=127.0.0.1 port={free_port()} dbname=phishme user=phishme connect_timeout=5",
    )


@pytest.fixture
def sqlite_store(tmp_path: Path) -> StoreUnderTest:
    """A SQLite file in ``tmp_path`` (not there yet); the broken store is in a folder that does not exist."""
    return StoreUnderTest(
        "sqlite", {"path": str(tmp_path / "store.sqlite3")},
        {"path": str(tmp_path / "no-such-folder" / "store.sqlite3")}, lambda: None,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> StoreUnderTest:
    """Each store in turn: the tests about store behaviour run against both."""
    return request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_store")
