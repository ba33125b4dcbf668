from __future__ import annotations

from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from inventory.bulk import model_instance
from inventory.outbox import nudge_task
from oms.models import Order, OrderEvent

Actor = AbstractBaseUser | str | None


def actor_fields(actor: Actor) -> dict:
    if isinstance(actor, AbstractBaseUser):
        return {"actor": actor, "actor_label": actor.get_username()}
    return {"actor": None, "actor_label": actor or "system"}


def order_event(*, order: Order, kind: str, actor: Actor, **fields) -> OrderEvent:
    """Append one entry to the order's timeline (``fields`` as ``order_event_row`` takes
    them); status and address changes also nudge, after commit, the task that tells the
    order's warehouse (``OMS_ORDER_CHANGED_TASK``)."""
    return order_event_save(order_event_row(order=order, kind=kind, actor=actor, **fields))


def order_event_save(event: OrderEvent) -> OrderEvent:
    """Insert an entry made by ``order_event_row``; a status or address change also nudges
    the order's warehouse after commit."""
    if event.kind in ("status", "address_changed"):
        orders_changed_nudge([event.order_id])
    event.save(force_insert=True)
    return event


def order_event_row(
    *,
    order: Order,
    kind: str,
    actor: Actor,
    message: str = "",
    from_status: str = "",
    to_status: str = "",
    **data,
) -> OrderEvent:
    """An unsaved timeline entry, for writers that insert many at once (and nudge with
    ``orders_changed_nudge`` themselves)."""
    return model_instance(
        OrderEvent,
        order=order,
        kind=kind,
        message=message[:500],
        from_status=from_status,
        to_status=to_status,
        data=data,
        **actor_fields(actor),
    )


def orders_changed_nudge(order_ids: list[int]) -> None:
    """After commit, nudge the task that tells the orders' warehouses
    (``OMS_ORDER_CHANGED_TASK``): one message for all of them."""
    if settings.OMS_ORDER_CHANGED_TASK and order_ids:
        transaction.on_commit(partial(_nudge_order_changed, *order_ids))


def _nudge_order_changed(*order_ids: int) -> None:
    nudge_task(settings.OMS_ORDER_CHANGED_TASK, *order_ids, coalesce_ms=200)
