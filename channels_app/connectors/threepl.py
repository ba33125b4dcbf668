"""The client we use to hand released orders to a warehouse (3PL or WMS) over its API.

Every call is JSON signed with HMAC-SHA256 over the raw body (``X-Signature: sha256=<hex>``)
and carries an ``Idempotency-Key``, so a retried call (ours after a timeout, or the task's)
never creates a second warehouse order. The warehouse signs its callbacks to us the same
way with the same per-warehouse secret; ``sign`` and ``verify_signature`` serve both sides.
The wire contract is in ``channels_app/INTERFACES.md`` ("Warehouse (3PL/WMS) and carrier").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from .base import ConnectorPermanentError, ConnectorRetryableError
from .http import HttpClient, RetryPolicy

SIGNATURE_HEADER = "X-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_TYPE_HEADER = "X-Event-Type"
SIGNATURE_PREFIX = "sha256="

# X-Event-Type values, ours to the warehouse and the warehouse's to us.
EVENT_ORDER_RELEASE = "order.release"
EVENT_ORDER_CANCEL = "order.cancel"
EVENT_ORDER_ADDRESS = "order.address_change"
EVENT_SHIPMENT = "shipment.created"
EVENT_STOCK_SNAPSHOT = "stock.snapshot"
EVENT_RETURN_RECEIPT = "return.received"


class AlreadyShipped(ConnectorPermanentError):
    """The warehouse has shipped (part of) the order, so it can no longer be changed."""


def sign(secret: str, body: bytes) -> str:
    """The ``X-Signature`` header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def encode_body(payload: Any) -> bytes:
    """Compact JSON; datetimes as ISO 8601 UTC with ``Z``, Decimals as strings."""
    return json.dumps(payload, default=_json_default, separators=(",", ":")).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime: the warehouse needs UTC times")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _error_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    return body.get("message") or body.get("error")


class ThreePLClient:
    """One warehouse's order API: send, cancel, change address.

    Raises ``ConnectorRetryableError`` for timeouts, connection errors, 429 and 5xx (after
    the policy's own retries), ``AlreadyShipped`` for a 409 ``already_shipped`` and
    ``ConnectorPermanentError`` for any other refusal (bad signature, invalid order).
    """

    def __init__(self, endpoint: str, secret: str, *, retry: RetryPolicy | None = None) -> None:
        if not secret:
            raise ConnectorPermanentError("the warehouse has no shared secret configured")
        self.secret = secret
        self.http = HttpClient(
            base_url=endpoint,
            retry=retry or RetryPolicy(),
            error_message=_error_message,
        )

    def close(self) -> None:
        self.http.close()

    def send_order(self, payload: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """Release an order; the warehouse answers 201, or 200 with the same body on replay."""
        return self._post("/orders", payload, EVENT_ORDER_RELEASE, idempotency_key)

    def cancel_order(self, reference: str, *, idempotency_key: str) -> dict[str, Any]:
        """Cancel a released order; ``AlreadyShipped`` once any parcel has left."""
        return self._post(
            f"/orders/{quote(reference, safe='')}/cancel",
            {"reference": reference},
            EVENT_ORDER_CANCEL,
            idempotency_key,
        )

    def change_address(
        self, reference: str, ship_to: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """Send a new ship-to address; ``AlreadyShipped`` once any parcel has left."""
        return self._post(
            f"/orders/{quote(reference, safe='')}/address",
            {"ship_to": ship_to},
            EVENT_ORDER_ADDRESS,
            idempotency_key,
        )

    def _post(
        self, path: str, payload: dict[str, Any], event_type: str, idempotency_key: str
    ) -> dict[str, Any]:
        if not idempotency_key:
            raise ConnectorPermanentError("an idempotency key is required")
        body = encode_body(payload)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            IDEMPOTENCY_HEADER: idempotency_key,
            EVENT_TYPE_HEADER: event_type,
        }
        try:
            # Raw bytes, not json=: the signature must cover exactly what is sent.
            response = self.http.request("POST", path, data=body, headers=headers)
        except ConnectorPermanentError as exc:
            refusal = exc.body if isinstance(exc.body, dict) else {}
            if exc.status_code == 409 and refusal.get("error") == "already_shipped":
                raise AlreadyShipped(exc.message, status_code=409, body=exc.body) from exc
            raise
        result = self.http.json_of(response)
        if not isinstance(result, dict):
            raise ConnectorRetryableError(
                f"warehouse answered {path} without a JSON object",
                status_code=response.status_code,
                body=result,
            )
        return result
