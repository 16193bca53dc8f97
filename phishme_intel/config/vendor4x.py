"""A config.ini written for the vendor's ``phishme-intelligence`` 4.x library, read as it is.

phishme-intel keeps the 4.x sections it shares (``[pm_api]``, ``[pm_product]``,
``[pm_jitter]``, ``[local_log]``, ``[local_file_lock]``, ``[local_proxy]``) with the same
keys and meanings, so a stored ``position`` is simply continued. The 4.x sections below
configure outputs and features that phishme-intel does differently: each of their keys
gives one warning naming what replaces it, never an error, so the file works unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import adapters

_MIGRATION = "see docs/migrating.rst"

#: 4.x section → what does its job in phishme-intel.
SECTIONS = {
    "pm_format": "the adapters render each format from the threat JSON",
    "local_sqlite": "[integration_sqlite] keeps every threat; deliveries are idempotent",
    "local_sleep": "requests are paced by [pm_api] max_requests_per_second",
    "output_cef": "use [integration_cef_syslog]",
    "output_json": "use [integration_json_files]",
    "output_stix": "use [integration_stix2]",
    "integration_raw_cef": "use [integration_cef_syslog]",
    "integration_raw_json": "use [integration_json_files]",
    "integration_raw_stix": "use [integration_stix2]",
}


def replaced(section: str) -> bool:
    """Whether ``section`` is a 4.x section that no installed adapter of the same name serves."""
    if section not in SECTIONS:
        return False
    prefix = "integration_"
    return not (section.startswith(prefix) and section[len(prefix):] in adapters.available())


def warnings(section: str, keys: Iterable[str]) -> list[str]:
    """One warning per key of the 4.x ``section``, naming what replaces it."""
    return [
        f"[{section}] {key}: a phishme-intelligence 4.x setting that phishme-intel does not use "
        f"({SECTIONS[section]}); ignored, {_MIGRATION}"
        for key in keys
    ]
