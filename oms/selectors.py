"""Reads of the order domain, with their joins done here."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from inventory.models import Reservation
from oms.models import Order, OrderEvent, OrderLine, Shipment


def order_holds_stock(*, order: Order) -> bool:
    return Reservation.objects.filter(
        reference=order.reservation_reference, status=Reservation.Status.ACTIVE
    ).exists()


def order_reservations(*, order: Order) -> QuerySet[Reservation]:
    return Reservation.objects.filter(reference=order.reservation_reference).select_related(
        "sku", "warehouse", "requested_sku"
    )


def order_list() -> QuerySet[Order]:
    return Order.objects.select_related("channel", "warehouse")


def order_detail_queryset() -> QuerySet[Order]:
    return order_list().prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("sku")),
        Prefetch("shipments", queryset=Shipment.objects.prefetch_related("lines")),
        Prefetch("events", queryset=OrderEvent.objects.select_related("actor")),
    )
