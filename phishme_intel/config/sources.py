"""Where a secret comes from: config.ini, a file, the environment, or a systemd credential.

Every option parsed by :func:`~phishme_intel.options.secret` (the API password, the proxy
password, every adapter's password or token) and ``[pm_api] user`` may be given in exactly
one of four places:

- config.ini itself: ``pass = …``;
- a file named in the same section by ``<key>_file`` (``pass_file = /etc/…``), relative to
  config.ini's folder, its whole content but one final line break; a file readable by other
  users gets the same warning as such a config.ini;
- an environment variable, named by :func:`variable` (``PHISHME_INTEL_PASS``);
- a systemd credential of that same name, the file ``$CREDENTIALS_DIRECTORY/<name>``
  (``LoadCredential=PHISHME_INTEL_PASS:/etc/phishme-intel/pass`` in the unit).

None of them wins over another: a value given in two places is a config problem naming
both. Where each value came from (never the value) is kept for ``--check``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Mapping

PREFIX = "PHISHME_INTEL_"
FILE_SUFFIX = "_file"
CREDENTIALS = "CREDENTIALS_DIRECTORY"
CONFIG = "config.ini"
_INTEGRATION = "integration_"
_UNUSABLE = "(unusable)"


def variable(section: str, key: str) -> str:
    """The environment variable (and systemd credential) name of ``[section] key``.

    ``[pm_api]`` keys go without their section (``PHISHME_INTEL_PASS``); adapters' without
    ``integration_`` (``PHISHME_INTEL_SPLUNK_HEC_TOKEN``); others with it
    (``PHISHME_INTEL_LOCAL_PROXY_AUTH_BASIC_PASS``).
    """
    if section == "pm_api":
        scope = ""
    elif section.startswith(_INTEGRATION):
        scope = section[len(_INTEGRATION):] + "_"
    else:
        scope = section + "_"
    return f"{PREFIX}{scope}{key}".upper()


def gather(
    section: str,
    raw: Mapping[str, str] | None,
    keys: Collection[str],
    base_dir: str,
    problems: list[str],
    warnings: list[str],
) -> tuple[dict[str, str] | None, dict[str, str]]:
    """The section's strings with each of ``keys`` filled in from wherever it was given.

    Returns the strings (None if the section is absent and nothing came from outside; the
    ``<key>_file`` keys removed) and, for each key found, ``{"[section] key": place}``.
    """
    values = dict(raw) if raw is not None else None
    origins: dict[str, str] = {}
    for key in keys:
        known = len(problems)
        found = _places(section, raw or {}, key, base_dir, problems, warnings)
        if values is not None:
            values.pop(key + FILE_SUFFIX, None)
        if len(found) > 1:
            places = " and in ".join(place for place, _ in found)
            problems.append(f"[{section}] {key}: is given twice, in {places}; keep one")
        if found or len(problems) > known:
            values = {} if values is None else values
            # a key whose source is in trouble is reported once, as that trouble, never also as missing
            values[key] = found[0][1] if found else _UNUSABLE
            if len(found) == 1:
                origins[f"[{section}] {key}"] = found[0][0]
    return values, origins


def _places(
    section: str, raw: Mapping[str, str], key: str, base_dir: str, problems: list[str], warnings: list[str]
) -> list[tuple[str, str]]:
    found = []
    if raw.get(key, "").strip():
        found.append((CONFIG, raw[key]))
    file_key = key + FILE_SUFFIX
    if raw.get(file_key, "").strip():
        path = os.path.join(base_dir, os.path.expanduser(raw[file_key].strip()))
        value = _read(path, f"[{section}] {file_key}", problems)
        if value is not None:
            found.append((f"the file {path} ({file_key})", value))
            if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                warnings.append(f"{path} is readable by other users and holds [{section}] {key}: chmod 600 {path}")
    name = variable(section, key)
    if os.environ.get(name):
        found.append((f"the environment variable {name}", os.environ[name]))
    folder = os.environ.get(CREDENTIALS)
    if folder and os.path.lexists(os.path.join(folder, name)):
        value = _read(os.path.join(folder, name), f"[{section}] {key}: the systemd credential {name}", problems)
        if value is not None:
            found.append((f"the systemd credential {name}", value))
    return found


def _read(path: str, what: str, problems: list[str]) -> str | None:
    """The file's text but one final line break; None (and a problem) if unreadable or empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read()
    except OSError as exc:
        problems.append(f"{what}: cannot read {path}: {exc.strerror}")
        return None
    except UnicodeDecodeError:
        problems.append(f"{what}: {path} is not UTF-8 text")
        return None
    value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        problems.append(f"{what}: {path} is empty")
        return None
    return value
