"""STIX over TAXII 2.1 into a real medallion server (memory backend) started here on 127.0.0.1.

A backfill and an updates run with deletions go through the real CLI with
``[integration_stix2] taxii_url``: the collection must then hold every object the adapter
made exactly once per version, a replayed backfill must add nothing, and a deleted threat's
report must be there revoked. A server that refuses the credentials, one that is down, and
one whose certificate is not trusted each end the run with exit 74 and the position kept.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from configupdater import ConfigUpdater
from receivers import Medallion
from support import run_cli, write_config
from taxii2client.v21 import Collection

from phishme_intel import config as config_module
from phishme_intel.errors import ConfigError
from phishme_intel.simulator.dataset import Dataset

USER, PASSWORD = "sync", "taxii-s3cr3t-pass"


@pytest.fixture
def dataset() -> Dataset:
    return Dataset(seed=17, malware=20, phish=6, days=10)


@pytest.fixture
def medallion(tmp_path):
    server = Medallion(tmp_path / "medallion", {USER: PASSWORD})
    yield server
    server.stop()


def taxii_config(tmp_path, simulator, api_root, **overrides):
    return write_config(tmp_path, simulator.url, integration_stix2={
        "use": "True", "folder": str(tmp_path / "stix2"), "taxii_url": api_root,
        "taxii_collection": api_root and "365fed99-08fa-fdcd-a1b3-fb247eb41d01",
        "taxii_user": USER, "taxii_password": PASSWORD, "taxii_max_retries": "1", "taxii_retry_backoff": "0.01",
        "taxii_timeout": "10", **overrides,
    })


def collection_versions(server: Medallion) -> list[dict]:
    """Every version of every object the collection holds."""
    collection = Collection(server.collection_url, user=USER, password=PASSWORD)
    return list(collection.get_objects(version="all").get("objects", []))


def written_versions(tmp_path) -> set[tuple[str, str]]:
    """(id, modified) of every object in the adapter's bundle files."""
    return {(obj["id"], obj["modified"]) for bundle in (tmp_path / "stix2").glob("*.json")
            for obj in json.loads(bundle.read_text())["objects"]}


def position(config) -> str:
    return config_module.read(str(config))["pm_api"]["position"]


def test_backfill_replay_and_deletions_reach_the_collection_once_each_and_revoke(
    tmp_path, simulator, dataset, medallion,
):
    config = taxii_config(tmp_path, simulator, medallion.api_root)

    backfill = run_cli(config)
    assert backfill.returncode == 0, backfill.stderr
    held = collection_versions(medallion)
    versions = Counter((obj["id"], obj["modified"]) for obj in held)
    assert versions and max(versions.values()) == 1
    assert set(versions) == written_versions(tmp_path)
    assert {obj["type"] for obj in held} >= {"identity", "indicator", "report"}

    updater = ConfigUpdater()
    updater.read(config)
    updater["pm_api"]["position"] = ""
    config.write_text(str(updater))
    replay = run_cli(config)
    assert replay.returncode == 0, replay.stderr
    assert Counter((obj["id"], obj["modified"]) for obj in collection_versions(medallion)) == versions

    deleted = dataset.delete(2)
    updates = run_cli(config)
    assert updates.returncode == 0, updates.stderr
    reports = {obj["external_references"][0]["external_id"]: obj for obj in collection_versions(medallion)
               if obj["type"] == "report" and obj.get("revoked")}
    assert set(reports) == {f"{kind[0]}_{threat_id}" for kind, threat_id in deleted}
    after = collection_versions(medallion)
    assert max(Counter((obj["id"], obj["modified"]) for obj in after).values()) == 1
    assert PASSWORD not in (tmp_path / "phishme_intel.log").read_text()


def test_refused_credentials_end_the_run_with_74_and_keep_the_position(tmp_path, simulator, medallion):
    config = taxii_config(tmp_path, simulator, medallion.api_root, taxii_password="wrong-" + PASSWORD)

    result = run_cli(config)

    assert result.returncode == 74
    assert f"refused the credentials of user '{USER}' (HTTP 401)" in result.stderr
    assert PASSWORD not in result.stderr
    assert position(config) == ""
    assert collection_versions(medallion) == []


def test_a_server_that_is_down_ends_the_run_with_74_and_keeps_the_position(tmp_path, simulator, medallion):
    api_root = medallion.api_root
    medallion.stop()
    config = taxii_config(tmp_path, simulator, api_root)

    result = run_cli(config)

    assert result.returncode == 74
    assert "adding objects to the TAXII collection failed 2 times, last: cannot reach" in result.stderr
    assert position(config) == ""


def test_tls_is_verified_against_taxii_ca_bundle(tmp_path, simulator, ca, ca_file):
    server = Medallion(tmp_path / "medallion", {USER: PASSWORD}, tls=ca)
    try:
        (tmp_path / "untrusted").mkdir()
        untrusted = run_cli(taxii_config(tmp_path / "untrusted", simulator, server.api_root))
        trusted = run_cli(taxii_config(tmp_path, simulator, server.api_root, taxii_ca_bundle=str(ca_file)))
    finally:
        server.stop()

    assert untrusted.returncode == 74
    assert "TLS verification of https://127.0.0.1:" in untrusted.stderr
    assert trusted.returncode == 0, trusted.stderr


def test_taxii_settings_that_do_not_go_together_are_config_errors(tmp_path):
    config = write_config(tmp_path, "http://127.0.0.1:9/apiv1", integration_stix2={
        "use": "True", "taxii_url": "http://taxii.example/api1", "taxii_password": PASSWORD,
        "taxii_ca_bundle": "missing.pem",
    })

    with pytest.raises(ConfigError) as failure:
        config_module.load(str(config))

    assert [p for p in failure.value.problems if p.startswith("[integration_stix2]")] == [
        "[integration_stix2] taxii_collection: is required when taxii_url is set",
        "[integration_stix2] taxii_password: taxii_user and taxii_password go together",
        "[integration_stix2] taxii_url: is plain http:// to taxii.example, which would send the TAXII password "
        "unencrypted; use https://",
        f"[integration_stix2] taxii_ca_bundle: {tmp_path / 'missing.pem'} is not a readable file",
    ]
