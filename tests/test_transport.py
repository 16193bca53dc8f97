"""No clear-text credentials by accident: plain http:// to another machine is a config error
unless allowed; ``ssl_verify = False`` is one warning per run in the log, nothing on stderr.

No test sends anything to another machine: the refused URLs are refused before any request,
and the allowed one is only validated (``--status`` reads the config and no network).
"""

from __future__ import annotations

import pytest
from support import run_cli, write_config
from test_bad_config import assert_one_problem, snapshot
from test_security import TlsFront

REMOTE = "192.0.2.10"  # TEST-NET-1: never routed, and never contacted here
HEC = {"use": "True", "token": "t-0k3n"}


def test_a_plain_http_base_url_to_another_machine_is_one_problem(tmp_path):
    config = write_config(tmp_path, f"http://{REMOTE}/apiv1")
    before = snapshot(tmp_path)

    result = run_cli(config)

    assert_one_problem(result, config, (
        f"[pm_api] base_url: is plain http:// to {REMOTE}, which would send the API user and password unencrypted; "
        "use https://, or set allow_plain_http = True in [pm_api]"
    ))
    assert snapshot(tmp_path) == before


def test_a_plain_http_hec_url_to_another_machine_is_one_problem(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_splunk_hec={**HEC, "url": f"http://{REMOTE}:8088"})
    before = snapshot(tmp_path)

    result = run_cli(config)

    assert_one_problem(result, config, (
        f"[integration_splunk_hec] url: is plain http:// to {REMOTE}, which would send its credentials unencrypted; "
        "use https://, or set allow_plain_http = True in [integration_splunk_hec]"
    ))
    assert simulator.requests == []
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "[::1]"])
def test_plain_http_to_loopback_is_fine(tmp_path, host):
    config = write_config(tmp_path, f"http://{host}:9/apiv1", integration_splunk_hec={**HEC, "url": f"http://{host}:9"})

    result = run_cli(config, "--status")

    assert result.returncode == 3, result.stderr  # unknown: no run yet; the config itself is valid


def test_allow_plain_http_lets_a_remote_http_url_through_validation(tmp_path):
    config = write_config(
        tmp_path, f"http://{REMOTE}/apiv1", pm_api={"allow_plain_http": "True"},
        integration_splunk_hec={**HEC, "url": f"http://{REMOTE}:8088", "allow_plain_http": "True"},
    )

    result = run_cli(config, "--status")

    assert result.returncode == 3, result.stderr


def test_ssl_verify_false_is_one_warning_in_the_log_and_nothing_on_stderr(tmp_path, simulator, ca):
    front = TlsFront(ca.issue_cert("api.example.com"), simulator.url)  # a certificate nobody trusts
    config = write_config(tmp_path, f"https://127.0.0.1:{front.port}/apiv1", pm_api={"ssl_verify": "False"})
    try:
        result = run_cli(config)
    finally:
        front.close()

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    log = (tmp_path / "phishme_intel.log").read_text()
    assert log.count("ssl_verify: is False") == 1
    assert "[pm_api] ssl_verify: is False: the server's TLS certificate is not checked" in log
    assert "InsecureRequestWarning" not in log
