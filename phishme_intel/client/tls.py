"""What went wrong when the API could not be reached as configured, in words that say what to change.

A TLS failure is one of four things, each with its own remedy: the server speaks plain HTTP
(wrong scheme or port), its certificate is not trusted (``ca_bundle``: a TLS-intercepting
proxy's CA), it is for another host name, or the handshake itself failed (no common
protocol version or cipher, or the connection cut). ``requests`` reports all four as one
``SSLError``; the ``ssl`` error inside it tells them apart. An HTTP 404 usually means a
``base_url`` without ``/apiv1``.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

API_PATH = "/apiv1"
_PLAIN_HTTP = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def tls_problem(exc: BaseException, host: str) -> str:
    """The sentence for a TLS failure talking to ``host``, naming the kind and its remedy."""
    cause = _ssl_error(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message or cause.reason or "not verified"
        if cause.verify_code in _NAME_MISMATCH:
            return (
                f"the TLS certificate of {host} is for another host name ({detail}); "
                "check the host name in [pm_api] base_url"
            )
        return (
            f"the TLS certificate of {host} is not trusted ({detail}); if a TLS-intercepting proxy or a "
            "private CA signed it, set [pm_api] ca_bundle to that CA's certificate (PEM)"
        )
    reason = getattr(cause, "reason", None) or ""
    if reason in _PLAIN_HTTP:
        return (
            f"{host} answered in plain HTTP, not TLS: check the scheme and port of [pm_api] base_url "
            "(https:// to a port that speaks TLS)"
        )
    return (
        f"the TLS handshake with {host} failed ({reason or cause or exc}): the server and this client share no "
        "protocol version or cipher, or the connection was cut during the handshake"
    )


def not_found(method: str, base_url: str, path: str) -> str:
    """The sentence for an HTTP 404: the full URL, and the missing ``/apiv1`` when that is why."""
    message = f"{method} {base_url}{path} answered HTTP 404 (not found)"
    if not urlsplit(base_url).path.rstrip("/").endswith(API_PATH):
        message += (
            f"; [pm_api] base_url lacks {API_PATH} at its end: the API lives under it "
            "(https://www.threathq.com/apiv1)"
        )
    return message


def _ssl_error(exc: BaseException) -> BaseException | None:
    """The ``ssl.SSLError`` somewhere inside ``exc`` (its args, reason, cause or context), if any."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        pending += [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
    return None
