"""The fulfillment loop with API warehouses (WMS / 3PL): orders go out by themselves, and
shipments, stock counts and returned parcels come back by themselves.

Outbound messages are ``FulfillmentRequest`` rows written before any HTTP call and removed
from the queue only when the warehouse accepted them, so a warehouse that is down loses
nothing: the sweep retries with jittered backoff. Inbound calls are stored once per event id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from channels_app.connectors.base import ConnectorError, ConnectorRetryableError
from channels_app.connectors.threepl import AlreadyShipped, ThreePLClient
from channels_app.models import (
    FulfillmentRequest,
    InboundEvent,
    StockSnapshot,
    StockSnapshotLine,
    WarehouseConnection,
)
from inventory.exceptions import DomainError
from inventory.models import SKU, StockLevel, Warehouse
from inventory.services import stock_adjust, stock_count
from oms.models import HoldReason, Order, OrderStatus
from oms.services.events import order_event
from oms.services.orders import order_hold, order_release_to_warehouse
from oms.services.shipments import shipment_create
from returns.models import ReturnRequest
from returns.services import return_receive

S = OrderStatus
AT_WAREHOUSE = (S.RELEASED, S.PICKED, S.PACKED, S.PARTIALLY_SHIPPED)
MAX_ATTEMPTS = 12


def api_connection(warehouse: Warehouse | None) -> WarehouseConnection | None:
    if warehouse is None:
        return None
    connection = WarehouseConnection.objects.filter(warehouse=warehouse).first()
    return connection if connection and connection.is_api else None


def _address(order: Order) -> dict:
    return {
        "name": order.ship_name,
        "line1": order.ship_line1,
        "line2": order.ship_line2,
        "line3": order.ship_line3,
        "city": order.ship_city,
        "region": order.ship_region,
        "postal_code": order.ship_postal_code,
        "country": order.ship_country,
        "phone": order.ship_phone,
    }


def _callbacks(warehouse: Warehouse) -> dict:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return {
        name: base + reverse(f"warehouse-{name}", kwargs={"code": warehouse.code})
        for name in ("shipments", "snapshots", "returns")
    }


def order_payload(order: Order) -> dict:
    """What an API warehouse needs to pick, pack and ship an order."""
    return {
        "reference": order.reservation_reference,
        "channel": order.channel.code,
        "channel_order_id": order.external_id,
        "lines": [
            {"line_id": str(line.pk), "sku": line.sku.code, "quantity": line.quantity_open}
            for line in order.lines.select_related("sku")
            if line.quantity_open and line.sku_id
        ],
        "ship_to": _address(order),
        "service_level": order.service_level or ("Prime" if order.is_prime else "Standard"),
        "ship_by": order.ship_by.isoformat() if order.ship_by else None,
        "pack_by": order.pack_by.isoformat() if order.pack_by else None,
        "callback": {f"{name}_url": url for name, url in _callbacks(order.warehouse).items()},
    }


def _request(order: Order, kind: str, key: str, payload: dict) -> FulfillmentRequest | None:
    try:
        with transaction.atomic():
            return FulfillmentRequest.objects.create(
                order=order,
                warehouse=order.warehouse,
                kind=kind,
                idempotency_key=key,
                payload=payload,
                next_attempt_at=timezone.now(),
            )
    except IntegrityError:
        return None  # already queued under this key


def fulfillment_sync_order(*, order_id: int) -> list[FulfillmentRequest]:
    """Bring an API warehouse up to date with one order: release it when allocated, send it
    once released, forward a cancellation or an address change; then send what is due.

    Safe to call any number of times (every message has a stable idempotency key).
    """
    order = Order.objects.select_related("warehouse", "channel").filter(pk=order_id).first()
    if order is None or api_connection(order.warehouse) is None:
        return []
    if order.status == S.ALLOCATED:
        # A nudge and the sweep may both get here: only the first releases it.
        with transaction.atomic():
            locked = Order.objects.select_for_update().get(pk=order.pk)
            if locked.status == S.ALLOCATED:
                order_release_to_warehouse(order=locked, actor=f"auto: {order.warehouse.code}")
        order.refresh_from_db()
    sent_order = order.fulfillment_requests.filter(kind=FulfillmentRequest.Kind.ORDER).first()
    if order.status in AT_WAREHOUSE and sent_order is None:
        _request(order, FulfillmentRequest.Kind.ORDER, f"order:{order.pk}", order_payload(order))
    elif sent_order is not None and order.status == S.CANCELLED:
        _request(
            order,
            FulfillmentRequest.Kind.CANCEL,
            f"cancel:{order.pk}",
            {"reference": order.reservation_reference, "reason": order.cancel_reason},
        )
    elif sent_order is not None and order.status in AT_WAREHOUSE:
        _address_change_queue(order, sent_order)
    due = list(
        order.fulfillment_requests.filter(
            state=FulfillmentRequest.State.PENDING, next_attempt_at__lte=timezone.now()
        ).order_by("created_at", "pk")
    )
    for request in due:
        fulfillment_request_send(request=request)
    return due


def _address_change_queue(order: Order, sent_order: FulfillmentRequest) -> None:
    """Queue the order's ship-to for the warehouse unless it is the address last queued for
    it. The order row is locked, so concurrent syncs agree on that last address, and the key
    is the change's number: each change is sent once (also a change back to an earlier
    address), and a repeated sync queues nothing."""
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        changes = locked.fulfillment_requests.filter(kind=FulfillmentRequest.Kind.ADDRESS)
        latest = changes.order_by("-created_at", "-pk").first()
        address = _address(locked)
        if address == (latest or sent_order).payload.get("ship_to"):
            return
        _request(
            locked,
            FulfillmentRequest.Kind.ADDRESS,
            f"address:{locked.pk}:{changes.count() + 1}",
            {"reference": locked.reservation_reference, "ship_to": address},
        )


def _client(connection: WarehouseConnection) -> ThreePLClient:
    return ThreePLClient(endpoint=connection.endpoint_url, secret=connection.get_secret())


def fulfillment_request_send(*, request: FulfillmentRequest) -> str:
    """Send one message to its warehouse and record the outcome on it (and the order).

    A message waits while an earlier one about the same order is still pending."""
    with transaction.atomic():
        request = FulfillmentRequest.objects.select_for_update().get(pk=request.pk)
        if request.state != FulfillmentRequest.State.PENDING:
            return request.state
        now = timezone.now()
        earlier = (
            FulfillmentRequest.objects.filter(
                order_id=request.order_id,
                state=FulfillmentRequest.State.PENDING,
                pk__lt=request.pk,
            )
            .order_by("-next_attempt_at")
            .first()
        )
        if earlier is not None:
            # The warehouse gets an order's messages in the order they were queued: no
            # address change before the order itself, no older address after a newer one.
            request.next_attempt_at = max(earlier.next_attempt_at, now) + timedelta(seconds=1)
            request.save(update_fields=["next_attempt_at"])
            return request.state
        # Claim it for a minute so a concurrent sweep does not send it twice at once.
        request.next_attempt_at = now + timedelta(seconds=60)
        request.save(update_fields=["next_attempt_at"])
    connection = api_connection(request.warehouse)
    if connection is None:
        return _settle(request, FulfillmentRequest.State.FAILED, "warehouse has no API connection")
    try:
        client = _client(connection)
    except ConnectorError as err:
        return _settle(request, FulfillmentRequest.State.FAILED, str(err))
    try:
        if request.kind == FulfillmentRequest.Kind.ORDER:
            client.send_order(request.payload, idempotency_key=request.idempotency_key)
        elif request.kind == FulfillmentRequest.Kind.CANCEL:
            client.cancel_order(
                request.payload["reference"], idempotency_key=request.idempotency_key
            )
        else:
            client.change_address(
                request.payload["reference"],
                request.payload["ship_to"],
                idempotency_key=request.idempotency_key,
            )
    except AlreadyShipped as err:
        _settle(request, FulfillmentRequest.State.REFUSED, str(err))
        order_hold(
            order=request.order,
            reason=HoldReason.ALREADY_SHIPPED,
            detail=f"{request.warehouse.code} had already shipped it when asked to "
            f"{request.get_kind_display().lower()}: {err}",
            actor=f"warehouse {request.warehouse.code}",
        )
        return FulfillmentRequest.State.REFUSED
    except ConnectorRetryableError as err:
        return _retry_later(request, connection, str(err), err.retry_after)
    except ConnectorError as err:
        WarehouseConnection.objects.filter(pk=connection.pk).update(last_error=str(err)[:2000])
        return _settle(request, FulfillmentRequest.State.FAILED, str(err))
    finally:
        client.close()
    WarehouseConnection.objects.filter(pk=connection.pk).update(last_success_at=timezone.now())
    return _settle(request, FulfillmentRequest.State.SENT, "")


def _retry_later(request, connection, error: str, retry_after) -> str:
    attempts = request.attempts + 1
    WarehouseConnection.objects.filter(pk=connection.pk).update(last_error=error[:2000])
    if attempts >= MAX_ATTEMPTS:
        return _settle(
            request,
            FulfillmentRequest.State.FAILED,
            error,
            attempts=attempts,
            note=f"gave up after {attempts} attempts: {error}",
        )
    delay = random.uniform(0, min(600, 2 * 2**attempts))
    delay = max(delay, retry_after or 0)
    next_attempt_at = timezone.now() + timedelta(seconds=delay)
    FulfillmentRequest.objects.filter(pk=request.pk).update(
        attempts=attempts,
        last_error=error[:2000],
        next_attempt_at=next_attempt_at,
    )
    if attempts == 1:
        # Only the first failure goes on the timeline; the retries after it are on the
        # request (attempts, next attempt, last error), and the outcome gets its own entry.
        order_event(
            order=request.order,
            kind=f"warehouse_{request.kind}_retrying",
            actor=f"warehouse {request.warehouse.code}",
            message=f"{request.get_kind_display()} not delivered, retrying: {error}",
            request=request.pk,
            next_attempt_at=next_attempt_at.isoformat(),
        )
    return FulfillmentRequest.State.PENDING


def _settle(request, state: str, error: str, attempts: int | None = None, note: str = "") -> str:
    now = timezone.now()
    attempts = attempts if attempts is not None else request.attempts + 1
    FulfillmentRequest.objects.filter(pk=request.pk).update(
        state=state,
        last_error=error[:2000],
        attempts=attempts,
        sent_at=now if state == FulfillmentRequest.State.SENT else None,
    )
    accepted = f"{request.get_kind_display()} accepted by {request.warehouse.code}" + (
        f" after {attempts} attempts" if attempts > 1 else ""
    )
    order_event(
        order=request.order,
        kind=f"warehouse_{request.kind}_{state}",
        actor=f"warehouse {request.warehouse.code}",
        message=note or error or accepted,
        request=request.pk,
        attempts=attempts,
    )
    return state


def fulfillment_sweep() -> int:
    """Beat: send every due message, and catch up orders whose nudge was lost (allocated or
    released to an API warehouse with nothing sent yet)."""
    api_warehouses = [
        c.warehouse_id for c in WarehouseConnection.objects.filter(mode="api", is_active=True)
    ]
    stragglers = (
        Order.objects.filter(
            warehouse_id__in=api_warehouses, status__in=[S.ALLOCATED, *AT_WAREHOUSE]
        )
        .exclude(fulfillment_requests__kind=FulfillmentRequest.Kind.ORDER)
        .values_list("pk", flat=True)[:500]
    )
    touched = 0
    for order_id in stragglers:
        fulfillment_sync_order(order_id=order_id)
        touched += 1
    due = FulfillmentRequest.objects.filter(
        state=FulfillmentRequest.State.PENDING, next_attempt_at__lte=timezone.now()
    ).order_by("next_attempt_at")[:500]
    for request in due:
        fulfillment_request_send(request=request)
        touched += 1
    return touched


# -- inbound -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundResult:
    ok: bool
    duplicate: bool
    outcome: str


def _once(warehouse: Warehouse, event_id: str, kind: str, payload: dict) -> InboundEvent | None:
    try:
        with transaction.atomic():
            return InboundEvent.objects.create(
                warehouse=warehouse, event_id=event_id, kind=kind, payload=payload
            )
    except IntegrityError:
        return None


def _finish(event: InboundEvent, ok: bool, outcome: str) -> InboundResult:
    InboundEvent.objects.filter(pk=event.pk).update(ok=ok, outcome=outcome[:500])
    return InboundResult(ok=ok, duplicate=False, outcome=outcome)


def _order_for(warehouse: Warehouse, reference: str) -> Order:
    """The order behind ``reference``, locked: a cancellation racing this callback commits
    either wholly before it or after it, never between reading the status and acting on it."""
    prefix = "order:"
    pk = reference[len(prefix) :] if reference.startswith(prefix) else ""
    order = (
        Order.objects.select_for_update().filter(pk=pk, warehouse=warehouse).first()
        if pk.isdigit()
        else None
    )
    if order is None:
        raise DomainError(
            f"No order {reference!r} was sent to {warehouse.code}.", code="unknown_order"
        )
    return order


def inbound_shipment(*, warehouse: Warehouse, event_id: str, payload: dict) -> InboundResult:
    """A warehouse shipped (part of) an order: record it through the shipment service, which
    queues the channel confirmation at once. A repeat of the event changes nothing; a
    shipment for an order we had cancelled holds the order for staff and books the units out.
    """
    event = _once(warehouse, event_id, "shipment", payload)
    if event is None:
        return InboundResult(ok=True, duplicate=True, outcome="duplicate")
    try:
        with transaction.atomic():
            order = _order_for(warehouse, payload.get("reference", ""))
            lines = {int(li["line_id"]): int(li["quantity"]) for li in payload.get("lines", [])}
            if order.status == S.CANCELLED or (
                order.status == S.ON_HOLD and order.status_before_hold == S.CANCELLED
            ):
                return _finish(event, True, _shipped_after_cancel(order, warehouse, payload, lines))
            shipment = shipment_create(
                order=order,
                carrier_code=payload.get("carrier_code", ""),
                tracking_number=payload.get("tracking_number", ""),
                lines=lines or None,
                service=payload.get("service", ""),
                shipped_at=_parse_time(payload.get("shipped_at")),
                actor=f"warehouse {warehouse.code}",
                idempotency_key=f"{warehouse.code}:{event_id}",
                source="3pl",
                strict_tracking=False,
            )
    except (DomainError, KeyError, ValueError, TypeError) as err:
        return _finish(event, False, f"refused: {err}")
    return _finish(event, True, f"shipment {shipment.pk} {shipment.tracking_number}")


def _shipped_after_cancel(order: Order, warehouse: Warehouse, payload: dict, lines) -> str:
    by_id = {line.pk: line for line in order.lines.select_related("sku")}
    for line_id, quantity in lines.items():
        line = by_id.get(line_id)
        if line and line.sku_id:
            stock_adjust(
                sku=line.sku,
                warehouse=warehouse,
                delta=-quantity,
                reason="shipped by the warehouse after the order was cancelled",
                reference=order.reservation_reference,
                actor=f"warehouse {warehouse.code}",
            )
    detail = (
        f"{warehouse.code} shipped it after it was cancelled "
        f"({payload.get('carrier_code')} {payload.get('tracking_number')})"
    )
    if order.status == S.CANCELLED:
        order_hold(order=order, reason=HoldReason.ALREADY_SHIPPED, detail=detail, actor="warehouse")
    order_event(order=order, kind="shipped_after_cancellation", actor="warehouse", message=detail)
    return "order was cancelled: held for staff, units booked out"


def _parse_time(value):
    from django.utils.dateparse import parse_datetime

    parsed = parse_datetime(value) if value else None
    if value and parsed is None:
        raise ValueError(f"unreadable time {value!r}")
    return parsed


def inbound_stock_snapshot(*, warehouse: Warehouse, event_id: str, payload: dict) -> InboundResult:
    """The warehouse's own counts become cycle counts; the snapshot keeps the drift found."""
    event = _once(warehouse, event_id, "snapshot", payload)
    if event is None:
        return InboundResult(ok=True, duplicate=True, outcome="duplicate")
    snapshot = StockSnapshot.objects.create(
        warehouse=warehouse, taken_at=_parse_time(payload.get("taken_at")) or timezone.now()
    )
    items = payload.get("items", [])
    skus = {s.code: s for s in SKU.objects.filter(code__in=[i.get("sku") for i in items])}
    on_hand = dict(
        StockLevel.objects.filter(warehouse=warehouse, sku__in=skus.values()).values_list(
            "sku__code", "on_hand"
        )
    )
    lines, drifted = [], 0
    for item in items:
        code, counted = str(item.get("sku", "")), item.get("quantity")
        system = on_hand.get(code, 0) if code in skus else None
        problem = ""
        try:
            if code not in skus:
                raise DomainError(f"unknown SKU {code!r}")
            stock_count(
                sku=skus[code],
                warehouse=warehouse,
                counted_quantity=counted,
                reference=f"snapshot {snapshot.pk}",
                actor=f"warehouse {warehouse.code}",
                idempotency_key=f"snapshot:{warehouse.code}:{event_id}:{code}",
            )
        except DomainError as err:
            problem = str(err)
        difference = (counted - system) if isinstance(counted, int) and system is not None else 0
        drifted += bool(difference or problem)
        lines.append(
            StockSnapshotLine(
                snapshot=snapshot,
                sku_code=code[:64],
                counted=counted if isinstance(counted, int) else 0,
                system_on_hand=system,
                difference=difference,
                problem=problem[:300],
            )
        )
    StockSnapshotLine.objects.bulk_create(lines)
    StockSnapshot.objects.filter(pk=snapshot.pk).update(
        lines_total=len(lines), lines_drifted=drifted
    )
    return _finish(event, True, f"snapshot {snapshot.pk}: {drifted} of {len(lines)} drifted")


def inbound_return_receipt(*, warehouse: Warehouse, event_id: str, payload: dict) -> InboundResult:
    """A returned parcel arrived at the warehouse: receive it into quarantine by RMA."""
    event = _once(warehouse, event_id, "return", payload)
    if event is None:
        return InboundResult(ok=True, duplicate=True, outcome="duplicate")
    try:
        with transaction.atomic():
            return_request = ReturnRequest.objects.filter(rma=payload.get("rma", "")).first()
            if return_request is None:
                raise DomainError(f"Unknown RMA {payload.get('rma')!r}.", code="unknown_rma")
            by_sku = {line.sku.code: line for line in return_request.lines.select_related("sku")}
            lines = {}
            for item in payload.get("lines", []):
                line = by_sku.get(item.get("sku"))
                if line is None:
                    raise DomainError(f"{item.get('sku')!r} is not on {return_request.rma}.")
                lines[line.pk] = int(item["quantity"])
            return_receive(
                return_request=return_request,
                lines=lines or None,
                actor=f"warehouse {warehouse.code}",
                idempotency_key=f"{warehouse.code}:{event_id}",
            )
    except (DomainError, KeyError, ValueError, TypeError) as err:
        return _finish(event, False, f"refused: {err}")
    return _finish(event, True, f"received {return_request.rma}")
