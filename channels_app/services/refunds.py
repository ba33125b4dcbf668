"""Refunds through the channel, and returns imported from the channels."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_app.connectors.base import RefundLine as ChannelRefundLine
from channels_app.connectors.base import RefundRequest, ReturnRecord
from channels_app.models import Channel, SyncLog
from inventory.exceptions import DomainError
from oms.models import Order
from returns.models import Refund, ReturnRequest
from returns.services import (
    CHANNEL_STATES,
    refund_not_required,
    refund_result,
    return_channel_state_apply,
    return_request_create,
)

from .connection import channel_call, channel_connector, channel_health_record


def refund_payload(refund: Refund) -> RefundRequest:
    return_request = refund.return_request
    return RefundRequest(
        channel_order_id=return_request.order.external_id,
        refund_id=refund.refund_key,
        lines=tuple(
            ChannelRefundLine(
                channel_line_id=line.return_line.order_line.channel_line_id,
                quantity=line.quantity,
                amount=line.amount,
            )
            for line in refund.lines.select_related("return_line__order_line")
        ),
        shipping_amount=refund.shipping_amount,
        currency=refund.currency,
        reason=return_request.reason_code or "RETURN",
        note=f"{return_request.rma} {refund.refund_key}",
    )


def refund_send(*, refund_id: int) -> bool:
    """Send one refund through its channel and record the outcome.

    The channel connector recognises our ``refund_key`` on the channel, so a retry after a
    lost answer never refunds twice. Connector errors propagate after being recorded so the
    task decides whether to retry.
    """
    refund = Refund.objects.select_related("return_request__order").get(pk=refund_id)
    if refund.state != Refund.State.PENDING:
        return True
    channel = Channel.objects.filter(pk=refund.return_request.channel_id).first()
    if channel is None:
        refund_not_required(
            refund=refund,
            reason="The channel has no API connection: refund the buyer in the webshop.",
        )
        return True
    payload = refund_payload(refund)
    try:
        channel_refund_id = channel_call(
            channel=channel,
            kind=SyncLog.Kind.REFUND,
            label=refund.refund_key,
            call=lambda connector: connector.refund(payload),
        )
    except Exception as err:
        refund_result(refund=refund, ok=False, error=str(err))
        raise
    refund_result(refund=refund, ok=True, channel_refund_id=channel_refund_id)
    return True


def refund_give_up(*, refund_id: int, error: str) -> None:
    refund_result(refund=Refund.objects.get(pk=refund_id), ok=False, error=error, final=True)


def return_record_import(*, channel: Channel, record: ReturnRecord) -> ReturnRequest | None:
    """Open (once) the return a channel reported; ``None`` when its order is unknown here."""
    order = Order.objects.filter(channel=channel, external_id=record.channel_order_id).first()
    if order is None:
        return None
    by_line = {line.channel_line_id: line for line in order.lines.all()}
    by_sku = {line.seller_sku: line for line in order.lines.all()}
    lines = []
    for item in record.lines:
        line = by_line.get(item.channel_line_id) or by_sku.get(item.seller_sku)
        if line is None:
            raise DomainError(
                f"Return {record.channel_return_id}: line {item.channel_line_id or item.seller_sku}"
                f" is not on order {order.external_id}.",
                code="unknown_return_line",
            )
        lines.append((line, item.quantity, item.refunded_amount))
    actor = f"import:{channel.code}"
    with transaction.atomic():
        existing = ReturnRequest.objects.filter(
            channel_id=order.channel_id, channel_return_id=record.channel_return_id
        ).exists()
        return_request = return_request_create(
            order=order,
            lines=[(line, quantity) for line, quantity, _amount in lines],
            reason_code=record.reason_code,
            buyer_comment=record.buyer_comment,
            requested_at=record.requested_at,
            channel_return_id=record.channel_return_id,
            raw=record.raw,
            actor=actor,
            auto_decide=False,
        )
        # Where the channel has the return: answered, closed, or refunded by the channel
        # itself (then recorded as such and never refunded again by us). A return seen
        # before only takes over what cannot clash with our own handling of it.
        refund = record.refund
        by_order_line = {line.order_line_id: line.pk for line in return_request.lines.all()}
        return return_channel_state_apply(
            return_request=return_request,
            state=record.state if record.state in CHANNEL_STATES else "requested",
            actor=actor,
            closed=record.closed,
            refund_id=refund.refund_id if refund else "",
            refund_amount=refund.amount if refund else None,
            refund_shipping=refund.shipping_amount if refund else Decimal("0"),
            line_amounts={
                by_order_line[line.pk]: amount
                for line, _quantity, amount in lines
                if amount is not None and line.pk in by_order_line
            },
            new=not existing,
        )


def channel_returns_import(*, channel: Channel) -> int:
    """Import the returns a channel reported since the last look (idempotent per return id).

    A return that cannot be stored is recorded as an import error with its payload.
    """
    from .imports import import_error_record

    started = timezone.now()
    since = (channel.returns_cursor or started - timedelta(days=30)) - timedelta(
        seconds=settings.CHANNEL_IMPORT_OVERLAP_SECONDS
    )
    connector = channel_connector(channel)
    try:
        records = connector.fetch_returns(updated_after=since)
    finally:
        connector.close()
    imported = failed = 0
    for record in records:
        try:
            if return_record_import(channel=channel, record=record) is not None:
                imported += 1
        except DomainError as err:
            failed += 1
            import_error_record(
                channel=channel,
                external_id=f"return:{record.channel_return_id}",
                raw=record.raw,
                reason=str(err),
            )
    Channel.objects.filter(pk=channel.pk).update(returns_cursor=started)
    channel_health_record(
        channel=channel,
        kind=SyncLog.Kind.RETURNS,
        started_at=started,
        ok=not failed,
        items=imported,
        errors=failed,
        message=f"{imported} returns seen, {failed} failed",
    )
    return imported
