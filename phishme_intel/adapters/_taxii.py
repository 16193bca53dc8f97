"""Pushing STIX objects to a TAXII 2.1 collection, with ``taxii2-client``, checked by status.

:meth:`TaxiiCollection.push` sends objects in envelopes of at most :data:`ENVELOPE_OBJECTS`
and waits (at most ``timeout`` seconds) for the status of each to be ``complete``. An
object counts as delivered when the status lists it among the successes, or when the
collection's manifest holds its very version (a server answers a replayed object with a
failure, "already exists" in its own words: medallion says "Unable to process object");
any other object makes the push fail. Connection failures, timeouts, 429 and 5xx are
retried with back-off (:mod:`phishme_intel.retry`); refused credentials (401, 403) and
other answers fail at once. TLS is verified against the system CAs or ``ca_bundle``.
Every request has a timeout. The password is never logged or put in a message.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

import requests
from taxii2client.common import _HTTPConnection
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection, Status

from ..errors import AdapterError
from ..retry import Retrier, TryAgain, retry_after

ENVELOPE_OBJECTS = 500
MANIFEST_IDS = 40
STATUS_POLL = 1
RETRIED_STATUSES = (429, 500, 502, 503, 504)
T = TypeVar("T")


class _Transport(requests.adapters.HTTPAdapter):
    """Gives every request of a session a timeout (taxii2-client sets none) and our TLS verification
    (a session's own ``verify`` loses to ``REQUESTS_CA_BUNDLE`` in the environment)."""

    def __init__(self, timeout: float, verify: bool | str) -> None:
        super().__init__()
        self.timeout = timeout
        self.verify = verify

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        kwargs["verify"] = self.verify
        return super().send(request, **kwargs)


class TaxiiCollection:
    """One TAXII 2.1 collection at ``<api_root>/collections/<collection>/``, written to by :meth:`push`."""

    def __init__(self, adapter: str, settings: dict[str, Any], log: logging.Logger) -> None:
        self.adapter = adapter
        self.url = f"{settings['taxii_url']}/collections/{settings['taxii_collection']}/"
        self.user: str | None = settings["taxii_user"]
        self.timeout: float = settings["taxii_timeout"]
        verify = settings["taxii_ca_bundle"] or True
        connection = _HTTPConnection(user=self.user, password=settings["taxii_password"], verify=verify, version="2.1")
        for scheme in ("http://", "https://"):
            connection.session.mount(scheme, _Transport(self.timeout, verify))
        self._connection = connection
        self._collection = Collection(self.url, conn=connection)
        self._retrier = Retrier(settings["taxii_max_retries"], settings["taxii_retry_backoff"], self._give_up, log)
        self.log = log

    def push(self, objects: Iterable[dict[str, Any]]) -> None:
        """Add ``objects`` to the collection; returns once the server holds every one of them.

        They are read as they are sent: at most one envelope is held at a time.
        """
        envelope: list[dict[str, Any]] = []
        for obj in objects:
            envelope.append(obj)
            if len(envelope) == ENVELOPE_OBJECTS:
                self._send(envelope)
                envelope = []
        if envelope:
            self._send(envelope)

    def _send(self, envelope: list[dict[str, Any]]) -> None:
        status = self._call("adding objects to the TAXII collection", partial(self._add, envelope))
        self._check(status, envelope)

    def close(self) -> None:
        self._connection.close()

    def _add(self, envelope: list[dict[str, Any]]) -> Status:
        return self._collection.add_objects(
            {"objects": envelope}, wait_for_completion=True, poll_interval=STATUS_POLL, timeout=self.timeout,
        )

    def _check(self, status: Status, envelope: list[dict[str, Any]]) -> None:
        if status.status != "complete":
            raise AdapterError(self.adapter, (
                f"the TAXII status {status.id} of {self.url} was still {status.status!r} after "
                f"{self.timeout:g} s; the objects will be pushed again"
            ))
        succeeded = {(item.get("id"), _instant(item.get("version"))) for item in status.successes or ()}
        unconfirmed = {
            (obj["id"], _instant(obj["modified"])) for obj in envelope
        } - succeeded
        if unconfirmed:
            missing = unconfirmed - self._held(sorted({object_id for object_id, _ in unconfirmed}))
            if missing:
                reasons = {item.get("id"): item.get("message") for item in status.failures or ()}
                object_id = sorted(missing)[0][0]
                raise AdapterError(self.adapter, (
                    f"{self.url} did not take {len(missing)} of {len(envelope)} objects, e.g. {object_id}: "
                    f"{reasons.get(object_id) or 'not in the status nor in the collection'}"
                ))
        self.log.debug("pushed %d objects to %s (%d new)", len(envelope), self.url, len(succeeded))

    def _held(self, ids: list[str]) -> set[tuple[str, dt.datetime | None]]:
        """(id, version) of every version of ``ids`` that the collection's manifest lists."""
        held = set()
        for start in range(0, len(ids), MANIFEST_IDS):
            chunk = ids[start:start + MANIFEST_IDS]
            for entry in self._manifest(chunk):
                held.add((entry.get("id"), _instant(entry.get("version"))))
        return held

    def _manifest(self, ids: list[str]) -> Iterable[dict[str, Any]]:
        page = self._call("reading the TAXII manifest", lambda: self._collection.get_manifest(id=ids, version="all"))
        yield from page.get("objects", ())
        while page.get("more") and page.get("next"):
            after = page["next"]
            page = self._call("reading the TAXII manifest",
                              partial(self._collection.get_manifest, id=ids, version="all", next=after))
            yield from page.get("objects", ())

    def _call(self, what: str, attempt: Callable[[], T]) -> T:
        return self._retrier.call(what, lambda: self._attempt(attempt))[0]

    def _attempt(self, attempt: Callable[[], T]) -> T:
        try:
            return attempt()
        except requests.exceptions.SSLError:
            raise AdapterError(self.adapter, (
                f"TLS verification of {self.url} failed; set [integration_stix2] taxii_ca_bundle to the CA "
                "that signed its certificate"
            )) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TryAgain(f"cannot reach {self.url}: {type(exc).__name__}") from None
        except requests.HTTPError as exc:
            response = exc.response
            code = response.status_code if response is not None else 0
            if code in (401, 403):
                raise AdapterError(self.adapter, (
                    f"{self.url} refused the credentials of user {self.user!r} (HTTP {code}); check "
                    "[integration_stix2] taxii_user and taxii_password, and that the user may write the collection"
                )) from None
            if code in RETRIED_STATUSES:
                headers = response.headers if response is not None else {}
                raise TryAgain(f"HTTP {code}", retry_after(headers.get("Retry-After"))) from None
            raise AdapterError(self.adapter, f"{self.url} answered HTTP {code}") from None
        except (TAXIIServiceException, ValueError) as exc:
            raise AdapterError(self.adapter, f"{self.url}: {exc}") from None

    def _give_up(self, what: str, last: TryAgain, attempts: int) -> AdapterError:
        return AdapterError(self.adapter, f"{what} failed {attempts} times, last: {last.reason}")


def _instant(value: Any) -> dt.datetime | None:
    """A STIX timestamp as a moment, so ``...00.000Z`` and ``...00Z`` compare equal; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
