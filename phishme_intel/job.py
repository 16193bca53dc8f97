"""A whole run, as cron starts it: config → log → lock → sync, as library functions.

:func:`run` and :func:`check` are what the CLI calls and what a Python program embedding
phishme-intel calls; both raise the :class:`~phishme_intel.errors.Error` family.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from . import config as config_module
from .checkpoint import ConfigCheckpoint
from .client import ApiClient
from .config import Config
from .errors import ConfigError, Error
from .lock import hold
from .logs import logging_to
from .sync import Report, synchronize

log = logging.getLogger("phishme_intel")


def run(config_path: str, *, verbose: bool = False) -> Report:
    """Sync once with the config at ``config_path``; returns what the run did."""
    config = config_module.load(config_path)
    with _logging(config, verbose), hold(config.lock_file):
        log.info("run started (config %s, adapters: %s)", config.path, ", ".join(config.adapters) or "none")
        client = ApiClient(config.api, config.proxy)
        adapters = [adapter(settings) for adapter, settings in config.adapters.values()]
        try:
            report = synchronize(client, adapters, ConfigCheckpoint(config.path), config.api, config.state)
        except Error as exc:
            log.error("run failed (exit %d): %s", exc.exit_code, exc)
            raise
        except Exception:
            log.exception("run failed: unexpected error")
            raise
        finally:
            client.close()
        log.info(
            "run finished: %s, %d delivered, %d withdrawn, %d skipped as expired, %d skipped as invalid, "
            "%d requests, %.1f s",
            report.mode, report.delivered, report.withdrawn, report.skipped_expired, report.skipped_invalid,
            report.requests, report.finished - report.started,
        )
    return report


def check(config_path: str, *, verbose: bool = False) -> Config:
    """Validate the config and test the connection and credentials (``GET /feed/``); no sync."""
    config = config_module.load(config_path)
    with _logging(config, verbose):
        client = ApiClient(config.api, config.proxy)
        try:
            client.check()
        except Error as exc:
            log.error("check failed (exit %d): %s", exc.exit_code, exc)
            raise
        finally:
            client.close()
        log.info("check passed: %s answers to user %s", config.api.base_url, config.api.user)
    return config


@contextmanager
def _logging(config: Config, verbose: bool) -> Iterator[None]:
    with ExitStack() as stack:
        try:
            stack.enter_context(logging_to(config.log_file, config.log_level, config.secrets, verbose))
        except OSError as exc:
            raise ConfigError(
                config.path, [f"[local_log] log_file: cannot open {config.log_file}: {exc.strerror}"]
            ) from None
        for warning in config.warnings:
            log.warning("config: %s", warning)
        yield
