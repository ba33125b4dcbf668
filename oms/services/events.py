from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

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
    """Append one entry to the order's timeline."""
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        message=message[:500],
        from_status=from_status,
        to_status=to_status,
        data=data,
        **actor_fields(actor),
    )
