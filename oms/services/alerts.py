"""Periodic order housekeeping: expiring soft holds and shipment-deadline alerts."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from inventory.services import reservation_release
from oms.models import TO_SHIP_STATUSES, DeadlineAlert, Order, OrderStatus

from .events import order_event
from .orders import order_lock


def order_soft_holds_expire(*, now: datetime | None = None) -> int:
    """Release the stock held for pending orders whose payment window has passed.

    The order stays pending (payment may still arrive; it is then allocated afresh).
    Returns the number of orders released.
    """
    now = now or timezone.now()
    expired = Order.objects.filter(
        status=OrderStatus.PENDING, payment_expires_at__lte=now
    ).values_list("pk", flat=True)
    released = 0
    for pk in expired.iterator():
        with transaction.atomic():
            order = order_lock(pk)
            if order.status != OrderStatus.PENDING:
                continue
            units = reservation_release(
                reference=order.reservation_reference, reason="payment window expired"
            )
            order.payment_expires_at = None
            order.save(update_fields=["payment_expires_at", "updated_at"])
            if units:
                released += 1
                order_event(
                    order=order,
                    kind="soft_hold_expired",
                    actor="system",
                    message=f"payment not confirmed in time: {units} unit(s) released",
                )
    return released


def deadline_alerts_raise(*, now: datetime | None = None, lead: timedelta | None = None) -> list:
    """Raise one alert per order and deadline (pack-by, ship-by) that falls within ``lead``
    of now (or has passed) while the order is still unshipped; e-mail each warehouse's
    contact a list of its new alerts. An alert is never raised twice for the same deadline.
    """
    now = now or timezone.now()
    lead = lead if lead is not None else timedelta(minutes=settings.OMS_DEADLINE_ALERT_LEAD_MINUTES)
    horizon = now + lead
    new_alerts = []
    for kind, field in (
        (DeadlineAlert.Kind.PACK_BY, "pack_by"),
        (DeadlineAlert.Kind.SHIP_BY, "ship_by"),
    ):
        due = (
            Order.objects.filter(status__in=TO_SHIP_STATUSES, **{f"{field}__lte": horizon})
            .exclude(deadline_alerts__kind=kind)
            .select_related("warehouse", "channel")
        )
        for order in due:
            alert, created = DeadlineAlert.objects.get_or_create(
                order=order, kind=kind, defaults={"due_at": getattr(order, field)}
            )
            if created:
                new_alerts.append(alert)
    _email_alerts(new_alerts, now)
    return new_alerts


def _email_alerts(alerts: list[DeadlineAlert], now: datetime) -> None:
    by_contact = defaultdict(list)
    for alert in alerts:
        warehouse = alert.order.warehouse
        if warehouse and warehouse.contact_email:
            by_contact[warehouse.contact_email].append(alert)
    for contact, items in by_contact.items():
        lines = [
            f"{a.order.channel.code} {a.order.external_id}: {a.get_kind_display()} "
            f"{a.due_at:%Y-%m-%d %H:%M} UTC" + (" (already passed)" if a.due_at <= now else "")
            for a in sorted(items, key=lambda a: a.due_at)
        ]
        send_mail(
            subject=f"{len(items)} order(s) at risk of missing their shipping deadline",
            message="\n".join(lines),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[contact],
        )
        DeadlineAlert.objects.filter(pk__in=[a.pk for a in items]).update(emailed_to=contact)
