"""Carrier tracking: poll the carrier's tracking service for undelivered shipments."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from channels_app.connectors.base import ConnectorError
from channels_app.connectors.carrier import CarrierTrackingClient
from oms.models import Shipment
from oms.services.tracking import Scan, shipment_tracking_record

BATCH = 200


def shipments_track(*, now=None, base_url: str | None = None) -> int:
    """Record the carrier's events for shipments not delivered and not checked for
    ``TRACKING_POLL_MINUTES``; returns how many were checked. A carrier outage stops the run
    (the next one resumes); an unknown number is recorded (and flagged after a day)."""
    base_url = base_url if base_url is not None else settings.CARRIER_TRACKING_URL
    if not base_url:
        return 0
    now = now or timezone.now()
    stale = now - timedelta(minutes=settings.TRACKING_POLL_MINUTES)
    due = (
        Shipment.objects.filter(delivered_at__isnull=True)
        .exclude(tracking_number="")
        .exclude(tracking_valid=False)
        .filter(Q(last_tracked_at__isnull=True) | Q(last_tracked_at__lte=stale))
        .order_by("last_tracked_at", "pk")[:BATCH]
    )
    client = CarrierTrackingClient(base_url=base_url)
    checked = 0
    try:
        for shipment in due:
            try:
                result = client.track(shipment.tracking_number)
            except ConnectorError:
                break
            if result is None:
                shipment_tracking_record(shipment=shipment, known=False, now=now)
            else:
                shipment_tracking_record(
                    shipment=shipment,
                    known=True,
                    scans=[Scan(e.status, e.at, e.location, e.description) for e in result.events],
                    estimated_delivery_at=result.estimated_delivery,
                    now=now,
                )
            checked += 1
    finally:
        client.close()
    return checked
