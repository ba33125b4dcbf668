from __future__ import annotations

from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from inventory.outbox import nudge_task
from oms.models import Order, OrderEvent

Actor = AbstractBaseUser | str | None


def actor_fields(actor: Actor) -> dict:
    if isinstance(actor, AbstractBaseUser):
        return {"actor": actor, "actor_label": actor.get_username()}
    return {"actor": None, "actor_label": actor or "system"}


def order_event(
    *,
    order: Order,
    kind: str,
    actor: Actor,
    message: str = "",
    from_status: str = "",
    to_status: str = "",
    **data,
) -> OrderEvent:
    """Append one entry to the order's timeline; status and address changes also nudge, after
    commit, the task that tells the order's warehouse (``OMS_ORDER_CHANGED_TASK``)."""
    if kind in ("status", "address_changed") and settings.OMS_ORDER_CHANGED_TASK:
        transaction.on_commit(partial(_nudge_order_changed, order.pk))
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        message=message[:500],
        from_status=from_status,
        to_status=to_status,
        data=data,
        **actor_fields(actor),
    )


def _nudge_order_changed(order_id: int) -> None:
    nudge_task(settings.OMS_ORDER_CHANGED_TASK, order_id, coalesce_ms=200)
