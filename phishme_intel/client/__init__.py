"""The Intelligence API client: the endpoints of docs/api.rst over HTTP, and nothing else.

One :class:`requests.Session` per worker thread (keep-alive: one TCP connection each), HTTP
Basic auth, a timeout on every request, and bounded retries with exponential backoff and
jitter on connection failures, truncated or invalid answers, 429 and 5xx, honouring
``Retry-After``. A client-wide throttle spaces requests (``max_requests_per_second``) and a
429 pauses every worker, not just the one that received it. Errors are the
:class:`~phishme_intel.errors.ApiError` family; no message ever contains a password.

Search answers can be fetched on one thread and decoded on another (:meth:`ApiClient.fetch_window`,
:class:`Fetched`): the sync's workers fetch, and the thread that delivers decodes each answer
just before using it, so the answers waiting between them are compact bytes, not decoded
threats.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3

from ..config import ApiSettings, ProxySettings
from ..errors import ApiResponseError, ApiUnavailable, AuthError, UnknownPosition
from ..logs import redact, shown
from ..models import ThreatRef
from ..retry import Retrier, Throttle, TryAgain, retry_after
from ..version import __version__
from .jsontext import decode_answer
from .tls import not_found, tls_problem

log = logging.getLogger(__name__)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PIECE = 256 * 1024
_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
T = TypeVar("T")


@dataclass(frozen=True)
class SearchPage:
    """One page of ``/threat/search``: raw threat objects, the JSON text of each, and the page counts."""

    threats: list[Any]
    texts: list[str]
    page: int
    total_pages: int
    total_elements: int | None


@dataclass(frozen=True)
class UpdatesPage:
    """One page of ``/threat/updates``: raw changelog entries and the position after them."""

    changelog: list[Any]
    next_position: str


class Fetched(Generic[T]):
    """An answer's body, fetched already, decoded by :meth:`result` in the thread that calls it.

    ``again(retry, attempt)`` is called when the body of attempt number ``attempt`` does not
    decode; it returns the body of a later attempt and that attempt's number. The decoded
    answer replaces the body, so a second :meth:`result` does not decode it again.
    """

    def __init__(
        self,
        body: bytes,
        attempt: int,
        decode: Callable[[bytes], T],
        again: Callable[[TryAgain, int], tuple[bytes, int]],
    ) -> None:
        self._body = body
        self._attempt = attempt
        self._decode = decode
        self._again = again
        self._decoded: list[T] = []

    def result(self) -> T:
        """The decoded answer. A body that is not a valid answer counts as a failed attempt and
        the call's remaining retries run here (the good body then replaces it); raises
        ApiUnavailable when none is left."""
        while not self._decoded:
            try:
                self._decoded.append(self._decode(self._body))
                self._body = b""
            except TryAgain as retry:
                self._body, self._attempt = self._again(retry, self._attempt)
        return self._decoded[0]


class ApiClient:
    """Talks to the Intelligence API. Thread-safe: each thread gets its own session."""

    def __init__(self, api: ApiSettings, proxy: ProxySettings | None = None) -> None:
        self.api = api
        self.base_url = api.base_url.rstrip("/")
        proxy = proxy or ProxySettings()
        self._proxies = _proxies(proxy)
        self._credentials = [*_sent_forms(api.user, api.password), *_sent_forms(proxy.user, proxy.password)]
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._retrier = Retrier(
            api.max_retries, api.retry_backoff, self._give_up, log, Throttle(api.max_requests_per_second)
        )
        self.requests_made = 0

    def check(self) -> None:
        """Test the connection and the credentials with ``GET /feed/``."""
        self._call("GET", "/feed/", {}, _data)

    def search_window(self, begin: int, end: int, page: int, threat_type: str) -> SearchPage:
        """Page ``page`` (0-based) of the threats last published in ``[begin, end]`` (epoch s)."""
        return self.fetch_window(begin, end, page, threat_type).result()

    def fetch_window(self, begin: int, end: int, page: int, threat_type: str) -> Fetched[SearchPage]:
        """:meth:`search_window`, decoded later by whoever calls the answer's ``result()``."""
        return self._fetch("POST", "/threat/search", {
            "beginTimestamp": begin, "endTimestamp": end, "threatType": threat_type,
            "resultsPerPage": self.api.results_per_page, "page": page,
        }, _search_page)

    def search_ids(self, refs: Sequence[ThreatRef]) -> SearchPage:
        """The current JSON of up to 100 threats by id; deleted threats are simply absent."""
        return self.fetch_ids(refs).result()

    def fetch_ids(self, refs: Sequence[ThreatRef]) -> Fetched[SearchPage]:
        """:meth:`search_ids`, decoded later by whoever calls the answer's ``result()``."""
        if not 0 < len(refs) <= 100:
            raise ValueError("search_ids takes 1 to 100 threat ids")
        return self._fetch("POST", "/threat/search", {
            "threatId": [ref.api_id for ref in refs], "resultsPerPage": 100, "page": 0,
        }, _search_page)

    def updates(self, *, position: str | None = None, timestamp: int | None = None) -> UpdatesPage:
        """The changes after ``position``, or after ``timestamp`` (whole epoch seconds)."""
        if (position is None) == (timestamp is None):
            raise ValueError("updates takes exactly one of position and timestamp")
        params: dict[str, Any] = {"position": position} if position else {"timestamp": int(timestamp or 0)}
        data = self._call("POST", "/threat/updates", params, _data)
        changelog, next_position = data.get("changelog"), data.get("nextPosition")
        if not isinstance(changelog, list) or not isinstance(next_position, str) or not next_position:
            raise ApiResponseError("POST /threat/updates answered without a changelog list and nextPosition")
        if not _UUID.fullmatch(next_position):
            raise ApiResponseError(  # it goes into config.ini and into the next request: only a UUID may
                f"POST /threat/updates answered a nextPosition that is not a UUID: {next_position[:60]!r}"
            )
        return UpdatesPage(changelog, next_position)

    def close(self) -> None:
        """Close every thread's session."""
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = (self.api.user, self.api.password)
            session.headers["User-Agent"] = f"phishme-intel/{__version__}"
            session.headers["Accept"] = "application/json"
            if self._proxies:
                session.proxies.update(self._proxies)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _fetch(self, method: str, path: str, params: dict[str, Any], decode: Callable[[bytes], T]) -> Fetched[T]:
        """The answer's body (retried like any call) for ``decode`` to decode later.

        An answer that then fails to decode counts as a failed attempt: the retries go on
        from there, in the decoding thread, so the call is still tried ``max_retries + 1``
        times at most.
        """
        def again(retry: TryAgain, attempt: int) -> tuple[bytes, int]:
            self._failed(method, path, attempt, retry)
            return self._attempts(method, path, params, _as_read, attempt + 1)

        return Fetched(*self._attempts(method, path, params, _as_read, 0), decode, again)

    def _call(self, method: str, path: str, params: dict[str, Any], decode: Callable[[bytes], T]) -> T:
        """One API call with retries; returns ``decode`` of the answer's body.

        ``decode`` raises TryAgain when the body is not a JSON answer that says success.
        """
        return self._attempts(method, path, params, decode, 0)[0]

    def _attempts(
        self, method: str, path: str, params: dict[str, Any], decode: Callable[[bytes], T], first: int
    ) -> tuple[T, int]:
        """Attempts from number ``first`` (0-based) on until one succeeds: its answer and its number."""
        return self._retrier.call(f"{method} {path}", lambda: self._attempt(method, path, params, decode), first)

    def _failed(self, method: str, path: str, attempt: int, retry: TryAgain) -> None:
        """After attempt number ``attempt`` failed: raise ApiUnavailable if it was the last, else wait."""
        self._retrier.failed(f"{method} {path}", attempt, retry)

    def _give_up(self, what: str, last: TryAgain, attempts: int) -> ApiUnavailable:
        return ApiUnavailable(
            f"{what} failed {attempts} times, last: {last.reason}; is {urlsplit(self.base_url).hostname} reachable?"
        )

    def _attempt(self, method: str, path: str, params: dict[str, Any], decode: Callable[[bytes], T]) -> T:
        with self._lock:
            self.requests_made += 1
        deadline = time.monotonic() + self.api.timeout
        try:
            response = self._session().request(
                method, self.base_url + path, params=params, timeout=self.api.timeout, verify=self.api.verify,
                stream=True,
            )
        except requests.exceptions.SSLError as exc:
            raise ApiUnavailable(tls_problem(exc, urlsplit(self.base_url).hostname or "")) from None
        except requests.exceptions.InvalidProxyURL:
            raise ApiUnavailable("the proxy URL in [local_proxy] is not usable") from None
        except _RETRYABLE as exc:
            raise TryAgain(_describe(exc)) from None
        with response:
            return self._answer(method, path, params, decode, response, self._body(response, deadline))

    def _body(self, response: requests.Response, deadline: float) -> bytearray:
        """The whole body, read in bounded pieces; TryAgain past the deadline or the size cap.

        Each piece is appended to one buffer as it arrives (no list of pieces joined at the
        end), so an answer is held once while it is read, not twice.
        """
        cap = self.api.max_answer_mb * 1024 * 1024
        too_large = f"the answer is larger than {self.api.max_answer_mb} MiB ([pm_api] max_answer_mb)"
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise TryAgain(too_large)
        body = bytearray()
        try:
            while piece := response.raw.read1(_PIECE, decode_content=True):
                if len(body) + len(piece) > cap:
                    raise TryAgain(too_large)
                if time.monotonic() > deadline:
                    raise TryAgain(f"no whole answer within {self.api.timeout:g} s ([pm_api] timeout)")
                body += piece
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TryAgain(_describe(exc)) from None
        return body

    def _answer(
        self, method: str, path: str, params: dict[str, Any], decode: Callable[[bytes], T],
        response: requests.Response, body: bytes,
    ) -> T:
        status = response.status_code
        if status in (401, 403):
            raise AuthError(f"the API rejected the credentials of user {self.api.user!r} (HTTP {status})")
        if status == 429:
            raise TryAgain("HTTP 429 rate limited", retry_after(response.headers.get("Retry-After")), everyone=True)
        if status >= 500:
            raise TryAgain(f"HTTP {status}", retry_after(response.headers.get("Retry-After")))
        if status == 400 and "position" in params:
            raise UnknownPosition(
                f"the API does not know the stored position {params['position']} (HTTP 400); "
                "to recover, empty [pm_api] position in config.ini: the next run backfills from init_date"
            )
        if status == 404:
            raise ApiResponseError(not_found(method, self.base_url, path))
        if status >= 300:
            text = body.decode("utf-8", "replace")
            answer = redact(text, self._credentials)  # a server or proxy may echo the request
            raise ApiResponseError(f"{method} {path} answered HTTP {status}: {shown(answer)}")
        return decode(body)


def _as_read(body: bytes) -> bytes:
    """The body as it was read (``bytes(body)`` would copy it)."""
    return body


def _data(content: bytes) -> dict[str, Any]:
    """The ``data`` object of an answer's body."""
    try:
        body = json.loads(content)
    except UnicodeDecodeError:
        raise TryAgain("the answer is not valid UTF-8") from None
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder follows
        raise TryAgain("the answer is not valid JSON") from None
    return _data_of(body)


def _data_of(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("success") is not True:
        raise TryAgain("the answer does not say success")
    data = body.get("data")
    if not isinstance(data, dict | list):
        raise TryAgain("the answer has no data")
    return data if isinstance(data, dict) else {"items": data}


def _search_page(content: bytes) -> SearchPage:
    """A search answer's body, each threat's JSON text kept as received (see :mod:`.jsontext`)."""
    try:
        body, texts = decode_answer(content, ("data", "threats"))
    except UnicodeDecodeError:
        raise TryAgain("the answer is not valid UTF-8") from None
    except (ValueError, RecursionError):  # a threat that alone is unreadable is an Unreadable in the list
        raise TryAgain("the answer is not valid JSON") from None
    data = _data_of(body)
    threats = data.get("threats")
    page = data.get("page") if isinstance(data.get("page"), dict) else {}
    if not isinstance(threats, list):
        raise ApiResponseError("POST /threat/search answered without a threats list")
    total, current, elements = (page.get(key) for key in ("totalPages", "currentPage", "totalElements"))
    return SearchPage(
        threats,
        texts,
        current if isinstance(current, int) else 0,
        total if isinstance(total, int) and total >= 0 else 1,
        elements if isinstance(elements, int) else None,
    )


def _describe(exc: Exception) -> str:
    """A short cause for a failed request, built from types and errno texts only (no URLs)."""
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError):
        return "the answer was cut short"
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        nested = [arg for arg in getattr(cause, "args", ()) if isinstance(arg, BaseException)]
        cause = nested[0] if nested else (getattr(cause, "reason", None) or cause.__context__)
    return type(exc).__name__


def _sent_forms(user: str | None, password: str | None) -> list[str]:
    """The forms a password takes in a request: as is, URL-encoded, and in an HTTP Basic header."""
    if not (user and password):
        return []
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [basic, quote(password, safe=""), password]


def _proxies(proxy: ProxySettings) -> dict[str, str]:
    """requests' proxies mapping, with the basic-auth credentials in each proxy URL."""
    proxies = {}
    for scheme, address in (("http", proxy.http), ("https", proxy.https)):
        if not address:
            continue
        if proxy.user and proxy.password:
            parts = urlsplit(address)
            credentials = f"{quote(proxy.user, safe='')}:{quote(proxy.password, safe='')}"
            address = urlunsplit(parts._replace(netloc=f"{credentials}@{parts.netloc}"))
        proxies[scheme] = address
    return proxies
