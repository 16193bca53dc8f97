"""Reading and validating config.ini.

The file keeps the vendor library's sections (``[pm_api]``, ``[pm_product]``,
``[pm_jitter]``, ``[local_log]``, ``[local_file_lock]``, ``[local_proxy]``,
``[integration_<name>]``) so an existing config.ini works as it is (:mod:`.vendor4x` names the
4.x sections it no longer uses); ``[local_status]`` and ``[indicators]`` (:mod:`.indicators`)
are phishme-intel's own. :func:`load`
checks all of it at once and raises one :class:`~phishme_intel.errors.ConfigError` listing
every problem, each naming its section and key; it never writes to the file. Relative
paths are resolved against the folder that holds config.ini, so cron's working directory
does not matter.
"""

from __future__ import annotations

import configparser
import datetime as dt
import difflib
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .. import adapters
from ..errors import ConfigError
from ..files import writable_file_problem
from ..options import (
    REQUIRED,
    Option,
    boolean,
    choice,
    cleartext_problem,
    epoch_seconds,
    instant,
    integer,
    listen_address,
    number,
    parse_section,
    path,
    position,
    secret,
    text,
    url,
    url_password,
)
from ..state import SyncState
from . import indicators, sources, vendor4x
from .indicators import IndicatorSettings

API_OPTIONS = (
    Option("base_url", url("https", "http"), "https://www.threathq.com/apiv1"),
    Option("user", text, REQUIRED),
    Option("pass", secret, REQUIRED),
    Option("ssl_verify", boolean, True),
    Option("ca_bundle", path, None),
    Option("allow_plain_http", boolean, False),
    Option("init_date", instant, REQUIRED),
    Option("position", position, None),
    Option("backfill_until", epoch_seconds, None),
    Option("backfill_done", epoch_seconds, None),
    Option("results_per_page", integer(1, 100), 100),
    Option("window_hours", integer(1, 24 * 31), 24),
    Option("max_retries", integer(0, 20), 5),
    Option("retry_backoff", number(0, 60), 1.0),
    Option("timeout", number(1, 600), 60.0),
    Option("expired_threat_days", integer(0, 36500), 0),
    Option("concurrency", integer(1, 16), 4),
    Option("max_requests_per_second", number(0, 1000), 10.0),
    Option("max_answer_mb", integer(1, 1024), 64),
    Option("max_changes_per_run", integer(1000, 10**9), 1_000_000),
)
PRODUCT_OPTIONS = (
    Option("intelligence", boolean, True),
    Option("brand_intelligence", boolean, True),
)
LOG_OPTIONS = (
    Option("log_level", choice("debug", "info", "warning", "error", "critical"), "info"),
    Option("log_file", path, "phishme_intel.log"),
)
LOCK_OPTIONS = (
    Option("use", boolean, True),
    Option("lock_file", path, "phishme_intel.lock"),
)
PROXY_OPTIONS = (
    Option("use", boolean, False),
    Option("http", url("http", "https"), None),
    Option("https", url("http", "https"), None),
    Option("auth_basic_use", boolean, False),
    Option("auth_basic_user", text, None),
    Option("auth_basic_pass", secret, None),
)
STATUS_OPTIONS = (
    Option("status_file", path, None),
    Option("stale_after", integer(1, 7 * 24 * 60), 60),
    Option("metrics_file", path, None),
    Option("listen", listen_address, None),
)
JITTER_OPTIONS = (
    Option("use", boolean, False),
    Option("execution_frequency", integer(1, 24 * 60), 15),
    Option("scheduler_offset", number(-1e6, 1e6), None),
)
STATUS_FILE = "phishme_intel.status.json"
USE = Option("use", boolean, False)
DEFAULT_ADAPTERS = ("sqlite",)
_SECTIONS = {
    "pm_api": API_OPTIONS,
    "pm_product": PRODUCT_OPTIONS,
    "local_log": LOG_OPTIONS,
    "local_file_lock": LOCK_OPTIONS,
    "local_proxy": PROXY_OPTIONS,
    "local_status": STATUS_OPTIONS,
    "pm_jitter": JITTER_OPTIONS,
    indicators.SECTION: indicators.OPTIONS,
}
_INTEGRATION = "integration_"
_SECRET_KEY = re.compile(r"pass|token|secret|key", re.IGNORECASE)


@dataclass(frozen=True)
class ApiSettings:
    """``[pm_api]`` and ``[pm_product]``: how to reach the API and what to ask of it."""

    base_url: str
    user: str
    password: str = field(repr=False)
    verify: bool | str
    init_date: dt.datetime
    results_per_page: int
    window_hours: int
    max_retries: int
    retry_backoff: float
    timeout: float
    expired_threat_days: int
    concurrency: int
    max_requests_per_second: float
    malware: bool
    phish: bool
    max_answer_mb: int = 64
    max_changes_per_run: int = 1_000_000


@dataclass(frozen=True)
class ProxySettings:
    """``[local_proxy]``: None everywhere means requests' own handling of the environment."""

    http: str | None = None
    https: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StatusSettings:
    """``[local_status]``: where each run reports how it ended, and when silence means trouble."""

    status_file: str
    stale_after: int
    metrics_file: str | None = None
    listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class JitterSettings:
    """``[pm_jitter]``: a fixed random delay (minutes) before scheduled updates runs.

    ``scheduler_offset`` is None until one is chosen; a stored value outside
    ``[0, execution_frequency)`` (the vendor library could store -1) is chosen again.
    """

    use: bool = False
    execution_frequency: int = 15
    scheduler_offset: float | None = None


@dataclass(frozen=True)
class Config:
    """A validated config.ini."""

    path: str
    api: ApiSettings
    proxy: ProxySettings
    log_level: str
    log_file: str
    lock_file: str | None
    state: SyncState
    adapters: dict[str, tuple[type[adapters.Adapter], dict[str, Any]]]
    status: StatusSettings
    jitter: JitterSettings
    warnings: list[str]
    indicators: IndicatorSettings
    origins: dict[str, str] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        """Every password and token this config holds, to be kept out of logs and messages."""
        values = [self.api.password, self.proxy.password]
        for address in (self.api.base_url, self.proxy.http, self.proxy.https):
            if password := url_password(address):  # http://user:password@proxy:3128
                values += [password, unquote(password)]
        for adapter, settings in self.adapters.values():
            values += [settings[o.key] for o in adapter.options if o.parse is secret]
        return [value for value in values if value]


def read(config_path: str) -> configparser.ConfigParser:
    """The file parsed as INI, strictly (no duplicate sections or keys, no interpolation)."""
    try:
        with open(config_path, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        raise ConfigError(config_path, ["the path is a directory, not a config file"]) from None
    except OSError as exc:
        raise ConfigError(config_path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            config_path, [f"the file is not UTF-8 text (byte {data[exc.start]:#x} at offset {exc.start})"]
        ) from None
    parser = configparser.ConfigParser(interpolation=None, strict=True, default_section="\0")
    try:
        parser.read_string(content, source=config_path)
    except configparser.Error as exc:
        raise ConfigError(config_path, [_ini_problem(exc)]) from None
    return parser


def log_target(config_path: str) -> tuple[str | None, list[str]]:
    """Where the log of the config at ``config_path`` goes, and the secrets to mask in it.

    As far as the file tells, without validating it: for writing down a failure that came
    before the config could be loaded (a plug-in's ``check()`` that crashed, say). The log
    file is ``[local_log] log_file`` or its default; the secrets are the values of every key
    named like a password or token, and the passwords inside URLs. None when unreadable.
    """
    config_path = os.path.abspath(config_path)
    try:
        parser = read(config_path)
    except ConfigError:
        return None, []
    raw = parser.get("local_log", "log_file", fallback="").strip() or "phishme_intel.log"
    log_file = os.path.join(os.path.dirname(config_path), os.path.expanduser(raw))
    secrets = []
    for section in parser.sections():
        for key, value in parser[section].items():
            if _SECRET_KEY.search(key) and value:
                secrets.append(value)
            if password := url_password(value):
                secrets += [password, unquote(password)]
    return log_file, secrets


def load(config_path: str) -> Config:
    """Read and validate config.ini; raise ConfigError listing every problem."""
    config_path = os.path.abspath(config_path)
    parser = read(config_path)
    base_dir = os.path.dirname(config_path)
    problems: list[str] = []
    warnings = _permission_warnings(config_path)
    origins: dict[str, str] = {}
    values = {}
    for name, options in _SECTIONS.items():
        raw = _gathered(name, parser, options, base_dir, problems, warnings, origins)
        values[name] = parse_section(name, raw, options, problems, warnings, base_dir)
    unknown = [
        section for section in parser.sections()
        if not vendor4x.replaced(section) and section not in _SECTIONS and not section.startswith(_INTEGRATION)
    ]
    for section in parser.sections():
        if vendor4x.replaced(section):
            warnings.extend(vendor4x.warnings(section, parser[section]))
        elif section in unknown:
            meant = _near_miss(section, [name for name in _SECTIONS if not parser.has_section(name)])
            warnings.append(f"[{section}]: unknown section, ignored" + (f"; did you mean [{meant}]?" if meant else ""))
    for name in _SECTIONS:
        missing = f"[{name}]: the section is missing"
        found = _near_miss(name, unknown)
        if found:
            problems[:] = [
                f"{problem}; found [{found}]: did you mean [{name}]?" if problem.startswith(missing) else problem
                for problem in problems
            ]
    api, product, log, lock, proxy, status, jitter, gate = (values[name] for name in _SECTIONS)
    _check_paths(api, log, lock, problems)
    _check_transport("pm_api", api, "the API user and password", problems, warnings)
    status_settings = _status(status, log, problems)
    if not (product["intelligence"] or product["brand_intelligence"]):
        problems.append("[pm_product]: intelligence and brand_intelligence are both False; nothing to sync")
    proxy_settings = _proxy(proxy, problems)
    enabled = _adapters(parser, base_dir, problems, warnings, origins)
    indicator_settings = indicators.settings(gate, problems)
    if problems:
        raise ConfigError(config_path, problems)
    return Config(
        path=config_path,
        api=ApiSettings(
            base_url=api["base_url"],
            user=api["user"],
            password=api["pass"],
            verify=api["ca_bundle"] or api["ssl_verify"],
            init_date=api["init_date"],
            results_per_page=api["results_per_page"],
            window_hours=api["window_hours"],
            max_retries=api["max_retries"],
            retry_backoff=api["retry_backoff"],
            timeout=api["timeout"],
            expired_threat_days=api["expired_threat_days"],
            concurrency=api["concurrency"],
            max_requests_per_second=api["max_requests_per_second"],
            malware=product["intelligence"],
            phish=product["brand_intelligence"],
            max_answer_mb=api["max_answer_mb"],
            max_changes_per_run=api["max_changes_per_run"],
        ),
        proxy=proxy_settings,
        log_level=log["log_level"],
        log_file=log["log_file"],
        lock_file=lock["lock_file"] if lock["use"] else None,
        state=SyncState(api["position"], api["backfill_until"], api["backfill_done"]),
        adapters=enabled,
        status=status_settings,
        jitter=JitterSettings(jitter["use"], jitter["execution_frequency"], jitter["scheduler_offset"]),
        warnings=warnings,
        origins=origins,
        indicators=indicator_settings,
    )


def _gathered(
    name: str,
    parser: configparser.ConfigParser,
    options: tuple[Option, ...],
    base_dir: str,
    problems: list[str],
    warnings: list[str],
    origins: dict[str, str],
) -> dict[str, str] | None:
    """The section's strings, its secrets (and ``[pm_api] user``) filled in from where they were given."""
    keys = [option.key for option in options if option.parse is secret or (name, option.key) == ("pm_api", "user")]
    raw = parser[name] if parser.has_section(name) else None
    gathered, found = sources.gather(name, raw, keys, base_dir, problems, warnings)
    origins.update(found)
    return gathered


def _near_miss(name: str, candidates: list[str]) -> str | None:
    """The one of ``candidates`` that looks like a misspelling of ``name``, if any."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=1, cutoff=0.8)
    return next((c for c in candidates if close and c.lower() == close[0]), None)


def _ini_problem(exc: configparser.Error) -> str:
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"[{exc.section}] {exc.option}: the key appears twice (line {exc.lineno})"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"[{exc.section}]: the section appears twice (line {exc.lineno})"
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno}: a key before any [section] header"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        return f"lines {lines}: not 'key = value' lines"
    return f"not an INI file: {exc.message}"


def _permission_warnings(config_path: str) -> list[str]:
    mode = os.stat(config_path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"{config_path} is readable by other users and holds the API password: chmod 600 {config_path}"]
    return []


def _check_paths(api: dict[str, Any], log: dict[str, Any], lock: dict[str, Any], problems: list[str]) -> None:
    if api["ca_bundle"] and not os.path.isfile(api["ca_bundle"]):
        problems.append(f"[pm_api] ca_bundle: {api['ca_bundle']} is not a readable file")
    if api["backfill_done"] is not None and api["backfill_until"] is None:
        problems.append("[pm_api] backfill_done: is set without backfill_until; clear both to backfill again")
    if log["log_file"] and (problem := writable_file_problem(log["log_file"])):
        problems.append(f"[local_log] log_file: {problem}")
    if lock["use"] and lock["lock_file"] and (problem := writable_file_problem(lock["lock_file"])):
        problems.append(f"[local_file_lock] lock_file: {problem}")


def _check_transport(
    section: str, values: dict[str, Any], what: str, problems: list[str], warnings: list[str], key: str = "base_url"
) -> None:
    """A URL in clear text to another machine is a problem unless allowed; TLS unverified is a warning.

    For ``[pm_api]``, and for every adapter that declares ``url``, ``allow_plain_http`` and
    ``ssl_verify`` options (Splunk HEC, and any adapter that sends credentials over HTTP).
    """
    problem = values[key] and cleartext_problem(values[key], what)
    if problem and not values["allow_plain_http"]:
        problems.append(f"[{section}] {key}: {problem}, or set allow_plain_http = True in [{section}]")
    if values["ssl_verify"] is False:
        warnings.append(
            f"[{section}] ssl_verify: is False: the server's TLS certificate is not checked, so anyone on the "
            f"way can pose as it and read {what}; set ca_bundle instead"
        )


def _status(status: dict[str, Any], log: dict[str, Any], problems: list[str]) -> StatusSettings:
    """``[local_status]``; the status file defaults to the log file's folder (checked with the log file)."""
    status_file = status["status_file"] or os.path.join(os.path.dirname(log["log_file"] or ""), STATUS_FILE)
    for key in ("status_file", "metrics_file"):
        if status[key] and (problem := writable_file_problem(status[key])):
            problems.append(f"[local_status] {key}: {problem}")
    if not status["status_file"] and os.path.islink(status_file):  # its folder is the log's, checked with it
        problems.append(f"[local_status] status_file: {writable_file_problem(status_file)}")
    return StatusSettings(status_file, status["stale_after"], status["metrics_file"], status["listen"])


def _proxy(proxy: dict[str, Any], problems: list[str]) -> ProxySettings:
    if not proxy["use"]:
        return ProxySettings()
    invalid = any(problem.startswith(("[local_proxy] http:", "[local_proxy] https:")) for problem in problems)
    if not (proxy["http"] or proxy["https"] or invalid):  # an invalid proxy URL is reported once, as itself
        problems.append("[local_proxy] use: is True but neither http nor https names a proxy")
    if not proxy["auth_basic_use"]:
        return ProxySettings(proxy["http"], proxy["https"])
    for key in ("auth_basic_user", "auth_basic_pass"):
        if not proxy[key]:
            problems.append(f"[local_proxy] {key}: is required when auth_basic_use is True")
    return ProxySettings(proxy["http"], proxy["https"], proxy["auth_basic_user"], proxy["auth_basic_pass"])


def _adapters(
    parser: configparser.ConfigParser, base_dir: str, problems: list[str], warnings: list[str], origins: dict[str, str]
) -> dict[str, tuple[type[adapters.Adapter], dict[str, Any]]]:
    """The enabled adapters with their parsed settings: the built-in store first, then in config file order.

    None enabled is a problem: a run would fetch everything, deliver it to nothing and store
    the position, so those threats would never reach any product.

    The engine puts the stores first (an adapter built from the store must see each commit
    of it); an adapter built from the store without any store enabled is a problem.
    """
    names = [
        s[len(_INTEGRATION):] for s in parser.sections() if s.startswith(_INTEGRATION) and not vendor4x.replaced(s)
    ]
    names = [*DEFAULT_ADAPTERS, *(name for name in names if name not in DEFAULT_ADAPTERS)]
    enabled: dict[str, tuple[type[adapters.Adapter], dict[str, Any]]] = {}
    for name in names:
        section = f"{_INTEGRATION}{name}"
        raw = parser[section] if parser.has_section(section) else None
        default_on = name in DEFAULT_ADAPTERS
        use = parse_section(section, raw, (Option("use", boolean, default_on),), problems)["use"]
        if not use:
            continue
        try:
            adapter = adapters.load(name)
        except LookupError as exc:
            problems.append(f"[{section}] use: {exc}")
            continue
        raw = _gathered(section, parser, adapter.options, base_dir, problems, warnings, origins)
        settings = parse_section(section, raw, (USE, *adapter.options), problems, warnings, base_dir)
        if None not in (settings[o.key] for o in adapter.options if o.default is REQUIRED):
            problems.extend(f"[{section}] {problem}" for problem in adapter.check(settings))
            if {"url", "allow_plain_http", "ssl_verify"} <= settings.keys():
                _check_transport(section, settings, "its credentials", problems, warnings, key="url")
        enabled[name] = (adapter, settings)
    if not enabled and not any(problem.startswith(f"[{_INTEGRATION}") for problem in problems):
        sections = ", ".join(f"[{_INTEGRATION}{name}] use" for name in names)
        problems.append(f"{sections}: no adapter is enabled, so a run would deliver to nothing; "
                        "set use = True in at least one")
    if not any(adapter.keeps_store for adapter, _settings in enabled.values()):
        problems.extend(
            f"[{_INTEGRATION}{name}]: is built from the IOC store, but no store is enabled: "
            f"enable [integration_sqlite] or [integration_postgresql]"
            for name, (adapter, _settings) in enabled.items() if adapter.reads_store
        )
    return enabled
