"""The PostgreSQL store: what only it has (types, password sources, TLS settings, the real CLI).

What both stores do alike (the adapter contract, the tables, the history) is in test_stores.py.
"""

from __future__ import annotations

import pytest
from contract import deliver
from postgres import free_port
from support import run_cli, sample_threats, write_config

from phishme_intel import config as config_module
from phishme_intel.adapters import postgresql
from phishme_intel.adapters.postgresql import PostgresqlAdapter
from phishme_intel.errors import AdapterError, ConfigError
from phishme_intel.models import parse_threat


def test_columns_have_postgresql_types(pg_store):
    deliver(pg_store.adapter())
    types = dict(pg_store.rows(
        "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    ))
    assert types["threats.threat_id"] == types["indicators.threat_id"] == "bigint"
    assert types["threats.json"] == "jsonb"
    timestamps = ("threats.first_published", "threats.last_published", "deleted_threats.deleted_at",
                  "indicator_history.first_seen", "indicator_history.last_seen", "indicator_history.withdrawn_at")
    assert {types[column] for column in timestamps} == {"timestamp with time zone"}


def test_threat_json_and_times_are_queryable_as_postgresql_values(pg_store):
    threat = sample_threats(malware=1, phish=0)[0]
    deliver(pg_store.adapter(), [threat])
    rows = pg_store.rows(
        "SELECT json->>'threatDetailURL', (extract(epoch FROM first_published) * 1000)::bigint FROM threats"
    )
    assert rows == [(threat.raw["threatDetailURL"], threat.first_published)]


def test_nul_characters_postgresql_cannot_hold_are_stored_as_replacement_characters(pg_store):
    raw = dict(sample_threats(malware=1, phish=0)[0].raw, label="before\0after")
    deliver(pg_store.adapter(), [parse_threat(raw)])
    assert pg_store.rows("SELECT label, json->>'label' FROM threats") == [("before\ufffdafter",) * 2]


@pytest.mark.parametrize("source", ["pass", "pass_file", "environment"])
def test_the_password_comes_from_the_config_a_file_or_the_environment(
    pg_store, tmp_path, simulator, monkeypatch, source
):
    section = {"use": "True", "conninfo": pg_store.settings["conninfo"]}
    if source == "pass":
        section["pass"] = pg_store.settings["pass"]
    elif source == "pass_file":
        (tmp_path / "pg-password").write_text(pg_store.settings["pass"] + "\n")
        (tmp_path / "pg-password").chmod(0o600)
        section["pass_file"] = "pg-password"
    else:
        monkeypatch.setenv("PHISHME_INTEL_POSTGRESQL_PASS", pg_store.settings["pass"])
    config = write_config(tmp_path, simulator.url, integration_postgresql=section)
    adapter, settings = config_module.load(str(config)).adapters["postgresql"]
    deliver(adapter(settings), sample_threats())
    assert pg_store.count("threats") == len(sample_threats())


def test_a_refused_password_is_an_adapter_error_that_does_not_show_it(pg_store):
    wrong = "wr0ng-Pa55word"
    with pytest.raises(AdapterError) as failure:
        deliver(PostgresqlAdapter({**pg_store.settings, "pass": wrong}))
    assert "password authentication failed" in str(failure.value)
    assert wrong not in str(failure.value)


def test_tls_settings_of_the_connection_string_are_passed_through(pg_store):
    settings = {**pg_store.settings, "conninfo": pg_store.settings["conninfo"] + " sslmode=require"}
    with pytest.raises(AdapterError, match="server does not support SSL, but SSL was required"):
        deliver(PostgresqlAdapter(settings))


@pytest.mark.parametrize(
    ("conninfo", "problem"),
    [
        ("host=db dbname=x password=hunter2", "must not hold the password"),
        ("postgresql://u:hunter2@db/x", "must not hold the password"),
        ("host=db dbname", "is not a libpq connection string"),
    ],
)
def test_a_bad_connection_string_is_a_config_error(tmp_path, simulator, conninfo, problem):
    config = write_config(tmp_path, simulator.url, integration_postgresql={"use": "True", "conninfo": conninfo})
    with pytest.raises(ConfigError) as failure:
        config_module.load(str(config))
    assert any(p.startswith("[integration_postgresql] conninfo:") and problem in p for p in failure.value.problems)
    assert "hunter2" not in str(failure.value)


def pg_config(tmp_path, simulator, conninfo, password):
    """A config.ini with the PostgreSQL store in place of the SQLite store."""
    return write_config(
        tmp_path, simulator.url, integration_sqlite={"use": "False"},
        integration_postgresql={"use": "True", "conninfo": conninfo, "pass": password},
    )


def test_the_cli_syncs_into_postgresql(tmp_path, simulator, pg_store, dataset):
    config = pg_config(tmp_path, simulator, pg_store.settings["conninfo"], pg_store.settings["pass"])
    result = run_cli(config)
    assert result.returncode == 0, result.stderr
    held = set(pg_store.rows("SELECT threat_type, threat_id FROM threats"))
    assert held == dataset.live_ids()
    assert "position =" in config.read_text() and "position = \n" not in config.read_text()


@pytest.mark.parametrize("failure", ["server-down", "refused-password"])
def test_the_cli_exits_74_without_advancing_when_the_server_is_down_or_refuses(tmp_path, simulator, pg_store, failure):
    conninfo, password = pg_store.settings["conninfo"], pg_store.settings["pass"]
    if failure == "server-down":
        conninfo = f"host=127.0.0.1 port={free_port()} dbname=phishme user=phishme"
    else:
        password = "Not-the-Pa55word"
    config = pg_config(tmp_path, simulator, conninfo, password)
    before = config.read_text()
    result = run_cli(config)
    assert result.returncode == 74, result.stderr
    assert "adapter postgresql" in result.stderr
    assert password not in result.stderr + (config.parent / "phishme_intel.log").read_text()
    assert config.read_text() == before


def test_a_commit_that_loaded_many_indicators_updates_the_planner_s_statistics(pg_store):
    def analysed():
        return pg_store.rows("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'indicators'")

    few = sample_threats(malware=3, phish=0)
    deliver(pg_store.adapter(), few)
    assert analysed() == [(False,)]
    many = sample_threats(malware=700, phish=0, seed=5)
    assert sum(len(t.indicators) for t in many) >= postgresql.ANALYZE_AFTER
    deliver(pg_store.adapter(), many)
    assert analysed() == [(True,)]
