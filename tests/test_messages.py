"""Messages that say what to change: each TLS failure by its kind, a 404 with the full URL and
the missing /apiv1, a misspelled section named, a progress line as wide as the terminal.

Every case runs the real CLI against real listeners on loopback.
"""

from __future__ import annotations

import re
import socket
import threading

import pytest
from support import run_cli, run_cli_on_a_terminal, write_config
from test_bad_config import assert_one_problem, snapshot
from test_security import TlsFront


def one_line_exit_69(result) -> str:
    assert result.returncode == 69, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_tls_to_a_server_that_speaks_plain_http_says_so(tmp_path, simulator):
    port = simulator.url.split(":")[-1].split("/")[0]
    config = write_config(tmp_path, f"https://127.0.0.1:{port}/apiv1", pm_api={"max_retries": "1"})

    message = one_line_exit_69(run_cli(config, "--check"))

    assert "127.0.0.1 answered in plain HTTP, not TLS: check the scheme and port of [pm_api] base_url" in message
    assert "ca_bundle" not in message


def test_an_untrusted_certificate_says_so_and_names_ca_bundle(tmp_path, simulator, ca):
    front = TlsFront(ca.issue_cert("127.0.0.1"), simulator.url)
    try:
        result = run_cli(write_config(tmp_path, f"https://127.0.0.1:{front.port}/apiv1"), "--check")
    finally:
        front.close()

    message = one_line_exit_69(result)
    assert "the TLS certificate of 127.0.0.1 is not trusted (" in message
    assert "set [pm_api] ca_bundle to that CA's certificate (PEM)" in message


def test_a_certificate_for_another_host_says_so(tmp_path, simulator, ca):
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    front = TlsFront(ca.issue_cert("api.example.com"), simulator.url)
    try:
        config = write_config(tmp_path, f"https://127.0.0.1:{front.port}/apiv1", pm_api={"ca_bundle": "ca.pem"})
        result = run_cli(config, "--check")
    finally:
        front.close()

    message = one_line_exit_69(result)
    assert "the TLS certificate of 127.0.0.1 is for another host name (" in message
    assert "check the host name in [pm_api] base_url" in message
    assert "ca_bundle" not in message


@pytest.fixture
def hangs_up():
    """A TCP listener that closes every connection as soon as it is accepted: no handshake ever ends."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_a_handshake_cut_short_says_the_handshake_failed(tmp_path, hangs_up):
    config = write_config(tmp_path, f"https://127.0.0.1:{hangs_up}/apiv1", pm_api={"max_retries": "1"})

    message = one_line_exit_69(run_cli(config, "--check"))

    assert "the TLS handshake with 127.0.0.1 failed (" in message
    assert "ca_bundle" not in message


def test_a_404_shows_the_full_url_and_the_missing_apiv1(tmp_path, simulator):
    base = simulator.url.removesuffix("/apiv1")
    config = write_config(tmp_path, base)

    message = one_line_exit_69(run_cli(config, "--check"))

    assert message == (
        f"phishme-intel: GET {base}/feed/ answered HTTP 404 (not found); [pm_api] base_url lacks /apiv1 at its end: "
        "the API lives under it (https://www.threathq.com/apiv1)"
    )


def test_a_misspelled_section_is_named_with_the_one_it_should_be(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)
    config.write_text(config.read_text().replace("[pm_api]", "[pm_apii]"))
    before = snapshot(tmp_path)

    result = run_cli(config)

    assert_one_problem(result, config, (
        "[pm_api]: the section is missing; it must set user, pass, init_date; found [pm_apii]: did you mean [pm_api]?"
    ))
    assert snapshot(tmp_path) == before


def test_a_misspelled_optional_section_gets_a_warning_naming_it(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)
    config.write_text(config.read_text().replace("[local_log]", "[local_logs]"))

    result = run_cli(config, "--check")

    assert result.returncode == 0, result.stderr
    assert "warning: [local_logs]: unknown section, ignored; did you mean [local_log]?" in result.stderr.splitlines()


@pytest.mark.parametrize("columns", [50, 200])
def test_the_progress_line_fits_the_terminals_width(config, columns):
    code, output, _ = run_cli_on_a_terminal(config, columns=columns)

    assert code == 0, output
    drawn = [part for part in re.split(r"[\r\n]+", output) if part.startswith("backfill [")]
    assert drawn, output
    assert max(len(part.rstrip()) for part in drawn) <= columns - 1
    assert any("delivered, 0 withdrawn" in part for part in drawn) == (columns > 100)  # cut only when narrow
