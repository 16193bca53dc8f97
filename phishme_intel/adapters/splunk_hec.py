"""``[integration_splunk_hec]``: events to a Splunk HTTP Event Collector (HEC).

Each delivered threat becomes one event (``"action": "upsert"``, ``"event_type": "threat"``,
the threat's summary and its JSON as received), timed at its last publication; with
``indicator_events`` each indicator also becomes one event (``"event_type": "indicator"``).
A withdrawal becomes one event ``"action": "delete"`` naming the threat: it stands for the
threat and all its indicators. Splunk keeps every event, so a replayed delivery adds
identical events again; a search reads the current state as the latest event per threat::

    sourcetype="cofense:intelligence" event_type=threat
    | dedup threat_type threat_id | where action="upsert"

Events go to ``<url>/services/collector/event`` as batches of concatenated JSON objects
(``batch_size`` events, at most ~1 MB a request) with the header ``Authorization: Splunk
<token>`` and a request channel (needed when the token has indexer acknowledgement on).
A batch is sent when it is full and at :meth:`commit`, which returns only when the
collector accepted every event. With ``use_ack`` (the token has indexer acknowledgement on)
accepted is not enough: the commit then also waits until ``/services/collector/ack``
confirms every batch as indexed, polling at most ``ack_timeout`` seconds, and fails
(exit 74, the position stays, the next run sends them again) if some are still
unconfirmed. 429, 502, 503, 504 and connection failures are retried with exponential
backoff and jitter, honouring ``Retry-After`` (seconds or an HTTP date; see
:mod:`phishme_intel.retry`); other answers fail at once.
TLS certificates are verified unless ``ssl_verify = False``. The token is never logged or
put in an error message.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import requests

from ..errors import AdapterError
from ..models import Threat, ThreatRef
from ..options import REQUIRED, Option, boolean, integer, number, path, secret, text, url
from ..retry import MAX_BACKOFF, Retrier, TryAgain, retry_after
from .base import Adapter

ENDPOINT = "/services/collector/event"
ACK_ENDPOINT = "/services/collector/ack"
ACK_POLL_FIRST = 0.05
ACK_POLL_MAX = 2.0
MAX_BODY = 1_000_000
RETRIED_STATUSES = (429, 502, 503, 504)


class SplunkHecAdapter(Adapter):
    """Sends events to a Splunk HTTP Event Collector; withdrawal sends an ``action=delete`` event."""

    name = "splunk_hec"
    options = (
        Option("url", url("https", "http"), REQUIRED),
        Option("token", secret, REQUIRED),
        Option("index", text, None),
        Option("sourcetype", text, "cofense:intelligence"),
        Option("source", text, "phishme-intel"),
        Option("indicator_events", boolean, False),
        Option("batch_size", integer(1, 10_000), 100),
        Option("ssl_verify", boolean, True),
        Option("ca_bundle", path, None),
        Option("allow_plain_http", boolean, False),
        Option("timeout", number(1, 600), 30.0),
        Option("max_retries", integer(0, 20), 5),
        Option("retry_backoff", number(0, 60), 1.0),
        Option("use_ack", boolean, False),
        Option("ack_timeout", number(1, 3600), 120.0),
    )

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        bundle = settings["ca_bundle"]
        if bundle and not os.path.isfile(bundle):
            return [f"ca_bundle: {bundle} is not a readable file"]
        return []

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        base: str = settings["url"]
        self.endpoint = base if base.endswith(ENDPOINT) else base + ENDPOINT
        self.ack_endpoint = self.endpoint[: -len(ENDPOINT)] + ACK_ENDPOINT
        self._token: str = settings["token"]
        self._metadata = {
            key: settings[key] for key in ("index", "sourcetype", "source") if settings[key] is not None
        }
        # passed with each request: a Session's own verify loses to REQUESTS_CA_BUNDLE in the environment
        self._verify: bool | str = settings["ca_bundle"] or settings["ssl_verify"]
        self._session: requests.Session | None = None
        self._retrier = Retrier(settings["max_retries"], settings["retry_backoff"], self._give_up, self.log)
        self._batch: list[bytes] = []  # the events queued, each the parts of its JSON text, b"\n" between two
        self._batch_events = 0
        self._batch_bytes = 0  # bytes of the events queued, one more each
        self._unconfirmed: set[int] = set()
        self._environment: dict[str, dict[str, Any]] = {}  # URL -> what requests takes from the environment

    def open(self) -> None:
        session = requests.Session()
        session.headers.update({
            "Authorization": f"Splunk {self._token}",
            "X-Splunk-Request-Channel": str(uuid.uuid4()),
            "Content-Type": "application/json",
        })
        self._session = session
        if self._verify is False and self.endpoint.startswith("https:"):
            self.log.warning("TLS certificates of %s are not verified (ssl_verify = False)", self.endpoint)

    def deliver(self, threats: Sequence[Threat]) -> None:
        indicator_events = self.settings["indicator_events"]
        for threat in threats:
            when = threat.last_published / 1000
            ref = {"threat_type": threat.kind, "threat_id": threat.id}
            head = self._encoded(when, {
                "action": "upsert", "event_type": "threat", **ref, "label": threat.label,
                "first_published": threat.first_published, "last_published": threat.last_published,
                "indicator_count": len(threat.indicators),
            })
            # the threat's JSON text as received becomes the event's last field, not encoded again
            self._add(head[:-2], b',"threat":', threat.json.encode("utf-8"), b"}}")
            if indicator_events:
                # what the events of its indicators share, encoded once: they differ only in their last fields
                head = self._encoded(when, {"action": "upsert", "event_type": "indicator", **ref})[:-2]
                for indicator in threat.emitted_indicators:
                    self._add(head, b",", orjson.dumps({
                        "indicator_type": indicator.kind, "value": indicator.value, "impact": indicator.impact,
                        "role": indicator.role, "malware_family": indicator.malware_family,
                    })[1:], b"}")

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        now = time.time()
        for ref in refs:
            self._add(self._encoded(now, {
                "action": "delete", "event_type": "threat", "threat_type": ref.kind, "threat_id": ref.id,
            }))

    def commit(self) -> None:
        self._flush()
        if self._unconfirmed:
            self._wait_for_acks()

    def close(self) -> None:
        self._unconfirmed.clear()
        self._environment.clear()
        self._batch.clear()
        self._batch_events = 0
        self._batch_bytes = 0
        if self._session is not None:
            self._session.close()
            self._session = None

    def _encoded(self, when: float, event: dict[str, Any]) -> bytes:
        """The JSON text of the event ``event`` at ``when`` (epoch seconds)."""
        return orjson.dumps({"time": round(when, 3), **self._metadata, "event": event})

    def _add(self, *parts: bytes) -> None:
        """Queue one event, its JSON text the ``parts`` one after the other (joined only with its batch)."""
        size = sum(map(len, parts))
        if self._batch and self._batch_bytes + size > MAX_BODY:
            self._flush()
        if self._batch:
            self._batch.append(b"\n")
        self._batch += parts
        self._batch_events += 1
        self._batch_bytes += size + 1
        if self._batch_events >= self.settings["batch_size"]:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        self._post(b"".join(self._batch), self._batch_events)
        self._batch.clear()
        self._batch_events = 0
        self._batch_bytes = 0

    def _post(self, body: bytes, count: int) -> None:
        answer = self._request(self.endpoint, body, "sending to the collector")
        self.log.debug("sent %d events (%d bytes) to %s", count, len(body), self.endpoint)
        if self.settings["use_ack"]:
            ack = answer.get("ackId")
            if not isinstance(ack, int):
                raise AdapterError(self.name, f"{self.endpoint} accepted events without an ackId: turn indexer "
                                              "acknowledgement on for the token, or set use_ack = False")
            self._unconfirmed.add(ack)

    def _wait_for_acks(self) -> None:
        """Poll the ack endpoint until every batch sent is confirmed as indexed, at most ``ack_timeout`` s."""
        timeout: float = self.settings["ack_timeout"]
        deadline = time.monotonic() + timeout
        pause = ACK_POLL_FIRST
        while True:
            body = orjson.dumps({"acks": sorted(self._unconfirmed)})
            answer = self._request(self.ack_endpoint, body, "asking the collector for acknowledgements")
            confirmed = answer.get("acks")
            if not isinstance(confirmed, dict):
                raise AdapterError(self.name, f"{self.ack_endpoint} answered without an acks object")
            self._unconfirmed -= {int(ack) for ack, done in confirmed.items() if done is True and ack.isdigit()}
            if not self._unconfirmed:
                return
            if time.monotonic() + pause > deadline:
                raise AdapterError(self.name, (
                    f"{self.ack_endpoint} did not confirm {len(self._unconfirmed)} batches as indexed within "
                    f"{timeout:g} s (use_ack); they will be sent again"
                ))
            time.sleep(pause)
            pause = min(ACK_POLL_MAX, pause * 2)

    def _request(self, url: str, body: bytes, what: str) -> dict[str, Any]:
        """POST ``body`` to ``url`` with retries; the collector's JSON answer (empty if it is not JSON)."""
        session = self._session
        if session is None:
            raise AdapterError(self.name, "used before open()")
        response = self._retrier.call(what, lambda: self._attempt(session, url, body))[0]
        try:
            answer = response.json()
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}

    def _attempt(self, session: requests.Session, url: str, body: bytes) -> requests.Response:
        """``session.post(url, ...)``, but what requests takes from the environment (proxies, the CA bundle)
        read once a run: reading it for each request was a third of the adapter's CPU."""
        try:
            request = session.prepare_request(requests.Request("POST", url, data=body))
            if request.url not in self._environment:
                self._environment[request.url] = session.merge_environment_settings(
                    request.url, {}, None, self._verify, None)
            response = session.send(request, timeout=self.settings["timeout"], **self._environment[request.url])
        except requests.exceptions.SSLError as exc:
            raise AdapterError(self.name, f"TLS failure with {url}: {_reason(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TryAgain(f"cannot reach {url}: {_reason(exc)}") from None
        if response.ok:
            return response
        problem = f"{url} answered {self._answer(response)}"
        if response.status_code not in RETRIED_STATUSES:
            raise AdapterError(self.name, problem + _hint(response.status_code))
        raise TryAgain(problem, retry_after(response.headers.get("Retry-After"), MAX_BACKOFF))

    def _give_up(self, what: str, last: TryAgain, attempts: int) -> AdapterError:
        return AdapterError(self.name, f"{last.reason} ({attempts} attempts)")

    def _answer(self, response: requests.Response) -> str:
        """``HTTP 403 (Invalid token, code 4)``: the status and the collector's own words, token masked."""
        try:
            reply = response.json()
            words = f"{reply['text']}, code {reply['code']}"
        except (ValueError, KeyError, TypeError):
            words = " ".join(response.text.split())[:200] or response.reason
        return f"HTTP {response.status_code} ({words.replace(self._token, '***')})"


def _hint(status: int) -> str:
    if status in (401, 403):
        return ": check [integration_splunk_hec] token"
    if status == 404:
        return ": check [integration_splunk_hec] url (is HEC enabled on that port?)"
    return ""


def _reason(exc: Exception) -> str:
    """The useful end of a requests error (``[Errno 111] Connection refused``), not its whole chain."""
    message = str(exc)
    for pattern in (r"certificate verify failed: [^'\")(]+", r"\[SSL[^\]]*\][^'\")(]*", r"\[Errno -?\d+\] [^'\")(]+"):
        found = re.search(pattern, message)
        if found:
            return found.group(0).strip().rstrip(".")
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__
