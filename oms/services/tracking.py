"""Carrier tracking: record scans, move delivered orders on, flag unknown tracking numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from oms.models import OrderStatus, Shipment, TrackingEvent

from .events import order_event
from .orders import order_mark_delivered


@dataclass(frozen=True)
class Scan:
    status: str
    occurred_at: datetime
    location: str = ""
    description: str = ""


@transaction.atomic
def shipment_tracking_record(
    *,
    shipment: Shipment,
    known: bool,
    scans: list[Scan] = (),
    estimated_delivery_at: datetime | None = None,
    now: datetime | None = None,
) -> Shipment:
    """Store what the carrier reported for a shipment.

    An unknown number is flagged invalid (once) when the shipment is older than
    ``TRACKING_UNKNOWN_AFTER_HOURS``: it counts against the valid tracking rate. A delivered
    scan marks the shipment delivered, and the order once all its shipments are.
    """
    now = now or timezone.now()
    shipment = (
        Shipment.objects.select_for_update(of=("self",)).select_related("order").get(pk=shipment.pk)
    )
    shipment.last_tracked_at = now
    fields = ["last_tracked_at"]
    if not known:
        limit = timedelta(hours=settings.TRACKING_UNKNOWN_AFTER_HOURS)
        if shipment.tracking_valid is None and now - shipment.shipped_at >= limit:
            shipment.tracking_valid = False
            fields.append("tracking_valid")
            order_event(
                order=shipment.order,
                kind="tracking_unknown",
                actor="carrier tracking",
                message=f"{shipment.carrier_code} does not know {shipment.tracking_number} "
                f"after {settings.TRACKING_UNKNOWN_AFTER_HOURS}h",
                shipment=shipment.pk,
            )
        shipment.save(update_fields=fields)
        return shipment
    if shipment.tracking_valid is not True:
        shipment.tracking_valid = True
        fields.append("tracking_valid")
    for scan in sorted(scans, key=lambda s: s.occurred_at):
        TrackingEvent.objects.get_or_create(
            shipment=shipment,
            status=scan.status,
            occurred_at=scan.occurred_at,
            defaults={"location": scan.location[:200], "description": scan.description[:300]},
        )
    if scans:
        latest = max(scans, key=lambda s: s.occurred_at)
        shipment.tracking_status = latest.status
        fields.append("tracking_status")
    if estimated_delivery_at:
        shipment.estimated_delivery_at = estimated_delivery_at
        fields.append("estimated_delivery_at")
    delivered = [s for s in scans if s.status == TrackingEvent.Status.DELIVERED]
    if delivered and shipment.delivered_at is None:
        shipment.delivered_at = delivered[0].occurred_at
        fields.append("delivered_at")
    shipment.save(update_fields=fields)
    order = shipment.order
    if (
        shipment.delivered_at
        and order.status == OrderStatus.SHIPPED
        and not order.shipments.filter(delivered_at__isnull=True).exclude(pk=shipment.pk).exists()
    ):
        order_mark_delivered(order=order, delivered_at=shipment.delivered_at, actor="carrier")
    return shipment
