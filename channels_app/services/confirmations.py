"""Shipment confirmation: tell the channel a parcel left, with carrier and tracking."""

from __future__ import annotations

from channels_app.connectors.base import ShipmentConfirmation
from channels_app.models import Channel, SyncLog
from oms.models import Shipment
from oms.services.shipments import (
    shipment_confirmation_not_required,
    shipment_confirmation_result,
)

from .connection import channel_call


def shipment_confirmation_payload(shipment: Shipment) -> ShipmentConfirmation:
    return ShipmentConfirmation(
        channel_order_id=shipment.order.external_id,
        carrier_code=shipment.carrier_code,
        carrier_name=shipment.carrier_name,
        service=shipment.service,
        tracking_number=shipment.tracking_number,
        shipped_at=shipment.shipped_at,
        lines=tuple(
            (line.order_line.channel_line_id, line.quantity)
            for line in shipment.lines.select_related("order_line")
        ),
    )


def shipment_confirm(*, shipment_id: int) -> bool:
    """Send one shipment's confirmation to its channel and record the outcome on it.

    Returns True when confirmed (or nothing to do). Lets ``ConnectorRetryableError`` and
    ``ConnectorPermanentError`` propagate after recording them, so the task decides whether
    to retry. Confirming twice is harmless: channels accept a repeat of the same tracking.
    """
    shipment = Shipment.objects.select_related("order").get(pk=shipment_id)
    if shipment.confirmation_status != Shipment.Confirmation.PENDING:
        return True
    channel = Channel.objects.filter(pk=shipment.order.channel_id).first()
    if channel is None:
        shipment_confirmation_not_required(
            shipment=shipment,
            reason="The channel has no API connection: it reads shipments from our REST API.",
        )
        return True
    payload = shipment_confirmation_payload(shipment)
    try:
        channel_call(
            channel=channel,
            kind=SyncLog.Kind.CONFIRMATION,
            label=f"{shipment.order.external_id} {shipment.tracking_number}",
            call=lambda connector: connector.confirm_shipment(payload),
        )
    except Exception as err:
        shipment_confirmation_result(shipment=shipment, ok=False, error=str(err))
        raise
    shipment_confirmation_result(shipment=shipment, ok=True)
    return True


def shipment_confirmation_give_up(*, shipment_id: int, error: str) -> None:
    """Mark a confirmation failed for good (shown in the admin, retryable by staff)."""
    shipment = Shipment.objects.get(pk=shipment_id)
    shipment_confirmation_result(shipment=shipment, ok=False, error=error, final=True)
