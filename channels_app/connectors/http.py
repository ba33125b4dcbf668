"""The one HTTP layer the Shopify, eBay and Walmart connectors share.

``HttpClient`` wraps a ``requests.Session`` with fixed timeouts, a bounded number of
retries with full-jitter exponential backoff for transient failures, the channel's own
pacing hints (``Retry-After`` and rate-limit headers) and a mapping of every failure to
``ConnectorRetryableError`` or ``ConnectorPermanentError`` carrying the channel's message.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

import orjson
import requests

from .base import ChannelConfig, ConnectorPermanentError, ConnectorRetryableError

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# A malformed base URL or header is configuration, not weather: retrying cannot help.
BAD_REQUEST_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries before the error goes back to the caller (the task)."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A channel that asks for a longer wait gets it from the task's retry, not a sleeping worker.
    max_retry_after: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    @classmethod
    def from_config(cls, config: ChannelConfig) -> RetryPolicy:
        """Policy with ``extra["retry_max_attempts"]`` / ``extra["retry_base_delay"]`` applied."""
        extra = config.extra
        return cls(
            max_attempts=int(extra.get("retry_max_attempts", cls.max_attempts)),
            base_delay=float(extra.get("retry_base_delay", cls.base_delay)),
        )

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(attempt-1))]."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class Authenticator(Protocol):
    """Supplies auth headers; ``invalidate`` drops a cached token after a 401."""

    def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


ErrorMessage = Callable[[Any], str | None]
PauseHint = Callable[[requests.Response], float | None]


class HttpClient:
    """A channel's HTTP session: retries, pacing and error mapping in one place.

    ``error_message`` pulls the channel's text out of a parsed error body. ``pause_hint``
    reads the channel's rate-limit headers and returns how long to wait before the next
    call (and, on a 429 without ``Retry-After``, how long to back off). With an
    ``auth``, a 401 drops the token and the call is repeated once with a fresh one.
    """

    def __init__(
        self,
        *,
        base_url: str,
        retry: RetryPolicy,
        error_message: ErrorMessage,
        pause_hint: PauseHint | None = None,
        auth: Authenticator | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.error_message = error_message
        self.pause_hint = pause_hint
        self.auth = auth
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        self._not_before = 0.0

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        """Absolute URL for a path; absolute URLs (e.g. pagination links) pass through."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        allow_status: frozenset[int] = frozenset(),
        max_attempts: int | None = None,
    ) -> requests.Response:
        """Send one logical request, retrying transient failures per the policy.

        Returns the response for 2xx/3xx or a status in ``allow_status`` (for calls where
        e.g. a 404 is an answer, not an error); raises ``ConnectorRetryableError`` or
        ``ConnectorPermanentError`` otherwise. ``max_attempts`` overrides the policy for
        this call (1 for a call that must not be repeated blindly, see ``send_once``).
        """
        url = self.url(path)
        attempts = max_attempts or self.retry.max_attempts
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            self._wait_turn()
            call_headers = dict(headers or {})
            if authenticated and self.auth is not None:
                call_headers.update(self.auth.headers())
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=call_headers,
                    timeout=(self.retry.connect_timeout, self.retry.read_timeout),
                )
            except requests.Timeout as exc:
                error: ConnectorRetryableError | ConnectorPermanentError = ConnectorRetryableError(
                    f"timeout calling {method} {url}: {exc}"
                )
            except BAD_REQUEST_ERRORS as exc:
                raise ConnectorPermanentError(f"cannot call {method} {url}: {exc}") from exc
            except requests.RequestException as exc:
                error = ConnectorRetryableError(f"connection error calling {method} {url}: {exc}")
            else:
                self._note_pace(response)
                if response.status_code < 400 or response.status_code in allow_status:
                    return response
                if (
                    response.status_code == 401
                    and authenticated
                    and self.auth is not None
                    and not reauthenticated
                ):
                    # An expired token is routine (Walmart's live 15 minutes): refresh once.
                    reauthenticated = True
                    self.auth.invalidate()
                    attempt -= 1
                    continue
                error = self.error_for(response)
            if isinstance(error, ConnectorPermanentError) or attempt >= attempts:
                raise error
            delay = self.retry.backoff(attempt)
            if error.retry_after is not None:
                if error.retry_after > self.retry.max_retry_after:
                    raise error
                delay = max(delay, error.retry_after)
            time.sleep(delay)

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` and parse the body as JSON (an empty body is ``None``)."""
        response = self.request(method, path, **kwargs)
        return self.json_of(response)

    @staticmethod
    def json_of(response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)  # several times the standard library's speed
        except ValueError as exc:
            raise ConnectorRetryableError(
                f"channel returned invalid JSON (HTTP {response.status_code})",
                status_code=response.status_code,
                body=response.text[:2000],
            ) from exc

    def error_for(
        self, response: requests.Response
    ) -> ConnectorRetryableError | ConnectorPermanentError:
        """Map an error response to our error types with the channel's own message."""
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:2000]
        status = response.status_code
        message = None
        if body:
            try:
                message = self.error_message(body)
            except (KeyError, IndexError, TypeError, AttributeError):
                message = None
        message = message or (body if isinstance(body, str) and body else f"HTTP {status}")
        if status in RETRYABLE_STATUS:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None and status == 429 and self.pause_hint is not None:
                retry_after = self.pause_hint(response)
            return ConnectorRetryableError(
                message, status_code=status, body=body, retry_after=retry_after
            )
        return ConnectorPermanentError(message, status_code=status, body=body)

    def _note_pace(self, response: requests.Response) -> None:
        if self.pause_hint is None or response.status_code == 429:
            return
        pause = self.pause_hint(response)
        if pause:
            self._not_before = max(
                self._not_before, time.monotonic() + min(pause, self.retry.max_retry_after)
            )

    def _wait_turn(self) -> None:
        wait = self._not_before - time.monotonic()
        if wait > 0:
            time.sleep(wait)


def send_once(retry: RetryPolicy, *, existing: Callable[[], T | None], send: Callable[[], T]) -> T:
    """Make a call that must take effect at most once (a refund), retrying transient failures.

    Before every attempt ``existing`` asks the channel whether an earlier attempt already
    took effect (its answer lost to a timeout or a 5xx) and returns that result if so;
    ``send`` must make a single attempt (``max_attempts=1``), so no repeat goes out unchecked.
    """
    attempt = 0
    while True:
        attempt += 1
        found = existing()
        if found is not None:
            return found
        try:
            return send()
        except ConnectorRetryableError as exc:
            if attempt >= retry.max_attempts:
                raise
            delay = retry.backoff(attempt)
            if exc.retry_after is not None:
                if exc.retry_after > retry.max_retry_after:
                    raise
                delay = max(delay, exc.retry_after)
            time.sleep(delay)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
