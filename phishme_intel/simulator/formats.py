"""The documents the server makes from a threat: ``GET /t3/{kind}/{id}/{cef|stix|html|pdf}``.

Small but plausible: CEF lines following the vendor's mapping (docs/api.rst), a minimal STIX 1.x
package, an HTML page and a stub PDF.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

FORMATS = ("cef", "stix", "html", "pdf")


_CEF_SIGNATURES = {
    "URL": ("watchlist_url", "Watchlist URL"),
    "Domain Name": ("watchlist_domain", "Watchlist Domain"),
    "IPv4 Address": ("watchlist_ip", "Watchlist IP"),
}
_CEF_SEVERITY = {"Major": 10, "Moderate": 7, "Minor": 4, "None": 0}


def _cef(product: str, signature: tuple[str, str], severity: int, extensions: dict[str, Any]) -> str:
    def header(value: str) -> str:
        return value.replace("\\", "\\\\").replace("|", "\\|")

    def ext(value: Any) -> str:
        return str(value).replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")

    head = "|".join(header(part) for part in ("CEF:0", "Cofense", product, "1.0", *signature, str(severity)))
    return (
        head + "|" + " ".join(f"{key}={ext(value)}" for key, value in extensions.items() if value is not None)
    )


def _cef_lines(threat: dict[str, Any]) -> list[str]:
    if threat["threatType"] == "PHISH":
        url = threat["phishingURL_1"]
        return [
            _cef(
                "Brand Intelligence",
                ("phish_confirmed", "Phish Confirmed"),
                10,
                {
                    "externalId": threat["id"],
                    "deviceCustomDate1": threat["firstDate"],
                    "dst": threat["ipDetail"]["ip"],
                    "dhost": url["host"],
                    "cs3": url["domain"],
                    "cs4": url["url"],
                    "cs5": threat["threatDetailURL"],
                },
            )
        ]
    common = {
        "externalId": threat["id"],
        "deviceCustomDate1": threat["firstPublished"],
        "cs5": threat["threatDetailURL"],
        "cs6": threat["reportURL"],
    }
    lines = []
    for block in threat.get("blockSet") or []:
        if block["blockType"] in _CEF_SIGNATURES:
            where = "dst" if block["blockType"] == "IPv4 Address" else "cs4"
            lines.append(
                _cef(
                    "Intelligence",
                    _CEF_SIGNATURES[block["blockType"]],
                    _CEF_SEVERITY[block["impact"]],
                    {**common, "cat": block["impact"], where: block["data"], "cs3": block["role"]},
                )
            )
    for exe in threat.get("executableSet") or []:
        lines.append(
            _cef(
                "Intelligence",
                ("malicious_file", "Malicious File"),
                10,
                {**common, "fname": exe["fileName"], "fileHash": exe["md5Hex"]},
            )
        )
    return lines


def render_format(threat: dict[str, Any], fmt: str) -> tuple[str, bytes]:
    """The server-made ``fmt`` (cef, stix, html or pdf) of ``threat``: (content type, body)."""
    title = escape(str(threat.get("label") or threat.get("title")))
    if fmt == "cef":
        return "text/plain; charset=utf-8", "".join(line + "\n" for line in _cef_lines(threat)).encode()
    if fmt == "stix":
        package = (
            f'<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" version="1.1.1" '
            f'id="cofense:package-{threat["threatType"].lower()}-{threat["id"]}">'
            f"<stix:STIX_Header><stix:Title>{title}</stix:Title></stix:STIX_Header></stix:STIX_Package>\n"
        )
        return "application/xml", ('<?xml version="1.0" encoding="UTF-8"?>\n' + package).encode()
    if fmt == "html":
        return "text/html; charset=utf-8", f"<html><body><h1>{title}</h1></body></html>\n".encode()
    return "application/pdf", b"%PDF-1.4\n% " + title.encode() + b"\n%%EOF\n"
