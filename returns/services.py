"""Every write to returns: requests, decisions, receipt into quarantine, inspection, refunds.

Nothing returned becomes sellable here except through ``return_inspect`` with the grade
*sellable*, which moves the units out of quarantine through the inventory services.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from inventory.models import Warehouse
from inventory.outbox import nudge_task
from inventory.services import stock_receive, stock_return_restock, stock_write_off
from oms.models import FulfillmentModel, Order, OrderLine

from .exceptions import InvalidReturnTransition, ReturnError
from .models import (
    RETURN_TRANSITIONS,
    AutoDecisionRule,
    Inspection,
    LateAnswerDaily,
    Refund,
    RefundLine,
    ReturnAlert,
    ReturnEvent,
    ReturnLine,
    ReturnRequest,
    ReturnStatus,
)

R = ReturnStatus
Actor = AbstractBaseUser | str | None


def _actor(actor: Actor) -> dict:
    if isinstance(actor, AbstractBaseUser):
        return {"actor": actor, "actor_label": actor.get_username()}
    return {"actor": None, "actor_label": actor or "system"}


def return_event(
    *, return_request: ReturnRequest, kind: str, actor: Actor, message: str = "", **data
) -> ReturnEvent:
    return ReturnEvent.objects.create(
        return_request=return_request, kind=kind, message=message[:500], data=data, **_actor(actor)
    )


def _lock(return_request: ReturnRequest | int) -> ReturnRequest:
    pk = return_request.pk if isinstance(return_request, ReturnRequest) else return_request
    return ReturnRequest.objects.select_for_update().get(pk=pk)


def _applied_before(return_request: ReturnRequest, kind: str, idempotency_key: str) -> bool:
    """A ``kind`` step of this return was already recorded under ``idempotency_key``."""
    return bool(idempotency_key) and (
        return_request.events.filter(kind=kind, data__idempotency_key=idempotency_key).exists()
    )


def return_transition(
    *, return_request: ReturnRequest, to: str, actor: Actor, message: str = "", **data
) -> ReturnRequest:
    """Move a (locked) return to ``to`` if allowed, and record it on its timeline.

    Raises ``InvalidReturnTransition``.
    """
    current = return_request.status
    if to not in RETURN_TRANSITIONS[current]:
        raise InvalidReturnTransition(
            f"Return {return_request.rma} cannot go from {R(current).label} to {R(to).label}.",
            from_status=current,
            to_status=to,
        )
    return_request.status = to
    fields = ["status"]
    if to == R.CLOSED:
        return_request.closed_at = timezone.now()
        fields.append("closed_at")
    return_request.save(update_fields=fields)
    ReturnEvent.objects.create(
        return_request=return_request,
        kind="status",
        from_status=current,
        to_status=to,
        message=message[:500],
        data=data,
        **_actor(actor),
    )
    return return_request


def _new_rma() -> str:
    return f"RMA-{secrets.token_hex(4).upper()}"


def _returnable(order_line: OrderLine) -> int:
    already = (
        ReturnLine.objects.filter(order_line=order_line)
        .exclude(return_request__status=R.REJECTED)
        .aggregate(n=Sum("quantity"))["n"]
        or 0
    )
    return order_line.quantity_shipped - already


@transaction.atomic
def return_request_create(
    *,
    order: Order,
    lines: Iterable[tuple[OrderLine, int]],
    reason_code: str = "",
    buyer_comment: str = "",
    requested_at: datetime | None = None,
    channel_return_id: str = "",
    raw: dict | None = None,
    actor: Actor = None,
    auto_decide: bool = True,
) -> ReturnRequest:
    """Open a return for shipped units of an order and answer it by the seller's rules
    (unless ``auto_decide`` is off: a return the channel already answered).

    A return the channel already sent (same ``channel_return_id``) is returned unchanged.
    FBA returns are Amazon's: recorded (closed at once) for the metrics, never received into
    our stock. Raises ``ReturnError`` for lines not on the order or more than was shipped.
    """
    if channel_return_id:
        existing = ReturnRequest.objects.filter(
            channel_id=order.channel_id, channel_return_id=channel_return_id
        ).first()
        if existing:
            return existing
    lines = [(line, qty) for line, qty in lines]
    problems = []
    for line, qty in lines:
        if line.order_id != order.pk:
            problems.append(f"line {line.pk} is not on order {order.external_id}")
        elif not isinstance(qty, int) or qty <= 0:
            problems.append(f"{line.seller_sku}: quantity {qty!r}")
        elif order.fulfillment_model != FulfillmentModel.FBA and qty > _returnable(line):
            problems.append(f"{line.seller_sku}: {qty} asked, {_returnable(line)} returnable")
    if problems or not lines:
        raise ReturnError(
            f"Cannot open a return for {order.external_id}: {'; '.join(problems) or 'no lines'}.",
            code="invalid_return_lines",
        )
    requested_at = requested_at or timezone.now()
    return_request = ReturnRequest.objects.create(
        order=order,
        channel_id=order.channel_id,
        channel_return_id=channel_return_id,
        rma=_new_rma(),
        fulfillment_model=order.fulfillment_model,
        reason_code=reason_code.strip().upper(),
        buyer_comment=buyer_comment,
        requested_at=requested_at,
        respond_by=requested_at + timedelta(hours=settings.RETURNS_RESPONSE_HOURS),
        raw_payload=raw or {},
    )
    ReturnLine.objects.bulk_create(
        [
            ReturnLine(
                return_request=return_request,
                order_line=line,
                sku_id=line.sku_id,
                quantity=qty,
                unit_price=line.unit_price,
            )
            for line, qty in lines
        ]
    )
    return_event(
        return_request=return_request,
        kind="requested",
        actor=actor,
        message=f"reason {return_request.reason_code or '-'}",
        lines={line.channel_line_id: qty for line, qty in lines},
    )
    if return_request.fulfillment_model == FulfillmentModel.FBA:
        return_request.responded_at = requested_at
        return_request.save(update_fields=["responded_at"])
        return return_transition(
            return_request=return_request,
            to=R.CLOSED,
            actor=actor,
            message="FBA return: handled by Amazon, recorded for the metrics",
        )
    if not auto_decide:
        return return_request
    return _auto_decide(return_request, actor)


def _rule_matches(rule: AutoDecisionRule, return_request: ReturnRequest, value) -> bool:
    if rule.channel_id and rule.channel_id != return_request.channel_id:
        return False
    codes = rule.reason_code_list
    if codes and return_request.reason_code not in codes:
        return False
    if rule.max_value is not None and value >= rule.max_value:
        return False
    if rule.category:
        categories = {
            (line.sku.category if line.sku else "")
            for line in return_request.lines.select_related("sku")
        }
        if categories != {rule.category}:
            return False
    return True


def _auto_decide(return_request: ReturnRequest, actor: Actor) -> ReturnRequest:
    value = sum((line.value for line in return_request.lines.all()), Decimal("0"))
    for rule in AutoDecisionRule.objects.filter(is_active=True).order_by("priority", "id"):
        if not _rule_matches(rule, return_request, value):
            continue
        return_request.decided_by_rule = rule
        return_request.save(update_fields=["decided_by_rule"])
        if rule.action == AutoDecisionRule.Action.RETURNLESS_REFUND:
            return_request_authorize(
                return_request=return_request,
                actor=f"rule: {rule.name}",
                returnless=True,
                refund_shipping=rule.refund_shipping,
                note=f"rule {rule.name}: refund without a return (value {value})",
            )
        else:
            return_request_authorize(
                return_request=return_request,
                actor=f"rule: {rule.name}",
                refund_shipping=rule.refund_shipping,
                note=f"rule {rule.name}: approved (value {value})",
            )
        return_request.refresh_from_db()
        return return_request
    return_event(
        return_request=return_request,
        kind="left_to_staff",
        actor="rules",
        message="no rule matched: waiting for staff",
    )
    return return_request


@transaction.atomic
def return_request_authorize(
    *,
    return_request: ReturnRequest,
    actor: Actor = None,
    returnless: bool = False,
    refund_shipping: bool = False,
    line_amounts: dict[int, Decimal] | None = None,
    note: str = "",
) -> ReturnRequest:
    """Approve a return (answering the buyer); a returnless approval refunds at once.

    ``refund_shipping`` gives the order's shipping back with the first refund;
    ``line_amounts`` (return line id to money back for all its units) sets a partial refund
    per line, never above what was paid for those units (``ReturnError`` otherwise).
    """
    return_request = _lock(return_request)
    _check_line_amounts(return_request, line_amounts or {})
    return_transition(return_request=return_request, to=R.AUTHORIZED, actor=actor, message=note)
    return_request.responded_at = return_request.responded_at or timezone.now()
    return_request.returnless = returnless
    return_request.refund_shipping = refund_shipping
    return_request.decision_note = note[:300]
    return_request.save(
        update_fields=["responded_at", "returnless", "refund_shipping", "decision_note"]
    )
    _save_line_amounts(return_request, line_amounts or {})
    if returnless:
        refund_queue(return_request=return_request, actor=actor)
        _advance(return_request, actor)
    return return_request


CENT = Decimal("0.01")


def _check_line_amounts(return_request: ReturnRequest, line_amounts: dict[int, Decimal]) -> None:
    """Refuse amounts for lines not on the return, below zero, above what was paid for the
    line's units, or below what already went back for them."""
    if not line_amounts:
        return
    lines = {line.pk: line for line in return_request.lines.select_related("order_line")}
    problems = []
    for pk, amount in line_amounts.items():
        line = lines.get(int(pk))
        try:
            amount = Decimal(str(amount)).quantize(CENT)
        except ArithmeticError:
            problems.append(f"{amount!r} is not an amount")
            continue
        if line is None:
            problems.append(f"line {pk} is not on {return_request.rma}")
        elif amount < 0:
            problems.append(f"{line}: a refund cannot be negative")
        elif amount > line.paid:
            problems.append(f"{line}: {amount} is more than the {line.paid} paid for those units")
        elif line.quantity_refunded >= line.quantity and amount != line.refund_total:
            problems.append(f"{line}: every unit is already refunded")
        elif amount < _line_refunded_amount(line):
            problems.append(f"{line}: {_line_refunded_amount(line)} already went back")
    if problems:
        raise ReturnError(
            f"Cannot set the refund of {return_request.rma}: {'; '.join(problems)}.",
            code="invalid_refund_amount",
        )


def _save_line_amounts(return_request: ReturnRequest, line_amounts: dict[int, Decimal]) -> None:
    for pk, amount in line_amounts.items():
        amount = Decimal(str(amount)).quantize(CENT)
        line = return_request.lines.get(pk=int(pk))
        line.refund_amount = None if amount == line.paid else amount
        line.save(update_fields=["refund_amount"])


def _line_refunded_amount(line: ReturnLine) -> Decimal:
    # SQLite drops the trailing zeros of a sum (10.00 comes back as 10): keep cents in messages.
    total = line.refund_lines.aggregate(total=Sum("amount"))["total"] or Decimal("0")
    return Decimal(total).quantize(CENT)


@transaction.atomic
def return_refund_terms_set(
    *,
    return_request: ReturnRequest,
    refund_shipping: bool | None = None,
    line_amounts: dict[int, Decimal] | None = None,
    actor: Actor = None,
) -> ReturnRequest:
    """Change what an approved return's refunds give back before they go out: shipping
    (with the next refund) and a partial amount per line (for units not refunded yet).

    Raises ``ReturnError`` for a closed or rejected return, amounts above what was paid or
    below what already went back, and shipping once the shipping or every unit is refunded.
    """
    return_request = _lock(return_request)
    if return_request.status in (R.REQUESTED, R.REJECTED, R.CLOSED):
        raise ReturnError(
            f"Return {return_request.rma} is {return_request.get_status_display()}: "
            "refund terms are set on an approved, open return.",
            code="refund_terms_closed",
        )
    line_amounts = line_amounts or {}
    _check_line_amounts(return_request, line_amounts)
    changes: dict = {}
    if refund_shipping is not None and refund_shipping != return_request.refund_shipping:
        if return_request.refunds.filter(shipping_amount__gt=0).exists():
            raise ReturnError(
                f"The shipping of {return_request.rma} was already refunded.",
                code="shipping_refunded",
            )
        if refund_shipping and not any(
            line.quantity_refunded < line.quantity for line in return_request.lines.all()
        ):
            raise ReturnError(
                f"Every unit of {return_request.rma} is already refunded: no refund is left "
                "to carry the shipping.",
                code="shipping_too_late",
            )
        return_request.refund_shipping = refund_shipping
        return_request.save(update_fields=["refund_shipping"])
        changes["refund_shipping"] = refund_shipping
    _save_line_amounts(return_request, line_amounts)
    if line_amounts:
        changes["line_amounts"] = {str(pk): str(a) for pk, a in line_amounts.items()}
    if changes:
        return_event(
            return_request=return_request,
            kind="refund_terms",
            actor=actor,
            message=_terms_text(return_request),
            **changes,
        )
    return return_request


def _terms_text(return_request: ReturnRequest) -> str:
    parts = [
        f"{line.order_line.seller_sku} {line.refund_total} of {line.paid}"
        for line in return_request.lines.select_related("order_line")
    ]
    shipping = "with shipping" if return_request.refund_shipping else "without shipping"
    return f"refund {', '.join(parts)}, {shipping}"


@transaction.atomic
def return_request_reject(
    *, return_request: ReturnRequest, reason: str, actor: Actor = None
) -> ReturnRequest:
    """Refuse a return with a reason the buyer will see."""
    if not reason.strip():
        raise ReturnError("A rejection needs a reason.", code="reason_required")
    return_request = _lock(return_request)
    return_transition(return_request=return_request, to=R.REJECTED, actor=actor, message=reason)
    return_request.responded_at = return_request.responded_at or timezone.now()
    return_request.decision_note = reason[:300]
    return_request.save(update_fields=["responded_at", "decision_note"])
    return return_request


@transaction.atomic
def return_mark_in_transit(
    *, return_request: ReturnRequest, tracking_number: str = "", actor: Actor = None
) -> ReturnRequest:
    return_request = _lock(return_request)
    return return_transition(
        return_request=return_request,
        to=R.IN_TRANSIT,
        actor=actor,
        message=f"on its way back {tracking_number}".strip(),
        tracking=tracking_number,
    )


def return_quarantine_warehouse(return_request: ReturnRequest) -> Warehouse:
    """Where returned parcels wait for inspection: the configured quarantine warehouse."""
    code = settings.RETURNS_QUARANTINE_WAREHOUSE
    warehouses = Warehouse.objects.filter(kind=Warehouse.Kind.QUARANTINE, is_active=True)
    warehouse = (warehouses.filter(code=code) if code else warehouses).order_by("pk").first()
    if warehouse is None:
        raise ReturnError(
            "No quarantine warehouse is set up to receive returns.", code="no_quarantine"
        )
    return warehouse


@transaction.atomic
def return_receive(
    *,
    return_request: ReturnRequest,
    lines: dict[int, int] | None = None,
    actor: Actor = None,
    idempotency_key: str = "",
) -> ReturnRequest:
    """Book returned units into the quarantine warehouse (counted, never available) and
    queue one refund for the units of this receipt.

    ``lines`` maps return line ids to units received; ``None`` receives everything still
    expected. Units may arrive over several receipts: the return stays open for receiving
    until every expected unit is in (or staff stop waiting, ``return_receiving_close``). A
    return the channel already refunded can still be received; nothing is refunded again.
    A repeat with the same idempotency key changes nothing. Raises ``ReturnError`` for more
    units than were expected and ``InvalidReturnTransition`` for a return that was not
    authorized.
    """
    return_request = _lock(return_request)
    if _applied_before(return_request, "received", idempotency_key):
        return return_request
    if return_request.status not in RECEIVABLE_STATUSES:
        raise InvalidReturnTransition(
            f"Return {return_request.rma} is {return_request.get_status_display()}: "
            "only an authorized return can be received."
        )
    if return_request.returnless:
        raise ReturnError(
            f"Return {return_request.rma} was refunded without a return.", code="returnless"
        )
    by_id = {line.pk: line for line in return_request.lines.select_related("sku")}
    wanted = lines or {pk: line.quantity_due for pk, line in by_id.items()}
    wanted = {int(pk): qty for pk, qty in wanted.items() if qty}
    problems = []
    for pk, qty in wanted.items():
        line = by_id.get(pk)
        if line is None:
            problems.append(f"line {pk} is not on {return_request.rma}")
        elif not isinstance(qty, int) or qty < 0 or qty > line.quantity_due:
            problems.append(f"{line}: {qty} received, {line.quantity_due} due")
        elif line.sku_id is None:
            problems.append(f"{line.order_line.seller_sku} is not mapped to one of our SKUs")
    if problems or not wanted:
        raise ReturnError(
            f"Cannot receive {return_request.rma}: {'; '.join(problems) or 'nothing due'}.",
            code="invalid_receipt",
        )
    quarantine = return_request.quarantine or return_quarantine_warehouse(return_request)
    for pk, qty in wanted.items():
        line = by_id[pk]
        stock_receive(
            sku=line.sku,
            warehouse=quarantine,
            quantity=qty,
            reference=return_request.reference,
            reason="return received, awaiting inspection",
            actor=actor,
        )
        line.quantity_received += qty
        line.save(update_fields=["quantity_received"])
    return_request.quarantine = quarantine
    return_request.received_at = timezone.now()
    return_request.save(update_fields=["quarantine", "received_at"])
    due = sum(line.quantity_due for line in by_id.values())
    return_event(
        return_request=return_request,
        kind="received",
        actor=actor,
        message=f"{sum(wanted.values())} unit(s) into {quarantine.code}"
        + (f", {due} still expected" if due else ""),
        lines={str(pk): qty for pk, qty in wanted.items()},
        idempotency_key=idempotency_key,
    )
    if return_request.status in (R.AUTHORIZED, R.IN_TRANSIT):
        return_transition(return_request=return_request, to=R.RECEIVED, actor=actor)
    refund_queue(return_request=return_request, actor=actor)
    _advance(return_request, actor)
    return return_request


# A return can take parcels while authorized or on its way, between receipts, and after the
# channel refunded it itself (the goods may still come back).
RECEIVABLE_STATUSES = (R.AUTHORIZED, R.IN_TRANSIT, R.RECEIVED, R.REFUNDED)


@transaction.atomic
def return_receiving_close(
    *, return_request: ReturnRequest, reason: str, actor: Actor = None
) -> ReturnRequest:
    """Stop waiting for the units of a return that have not come back (staff): they are
    recorded as not returned and never refunded; the return then finishes with what did come
    back (refunded once its refunds are out, closed once inspected too).

    Raises ``ReturnError`` without a reason, for a returnless refund or when nothing is due.
    """
    if not reason.strip():
        raise ReturnError("Say why the rest is not expected any more.", code="reason_required")
    return_request = _lock(return_request)
    if return_request.returnless:
        raise ReturnError(
            f"Return {return_request.rma} was refunded without a return.", code="returnless"
        )
    lines = list(return_request.lines.select_for_update(of=("self",)))
    due = {line.pk: line.quantity_due for line in lines if line.quantity_due}
    if return_request.status not in RECEIVABLE_STATUSES or not due:
        raise ReturnError(
            f"Return {return_request.rma} is {return_request.get_status_display()} with no "
            "units still expected.",
            code="nothing_due",
        )
    for line in lines:
        if line.pk in due:
            line.quantity_not_returned += due[line.pk]
            line.save(update_fields=["quantity_not_returned"])
    return_event(
        return_request=return_request,
        kind="receiving_closed",
        actor=actor,
        message=f"{sum(due.values())} unit(s) not coming back: {reason}",
        lines={str(pk): qty for pk, qty in due.items()},
    )
    if not any(line.quantity_received for line in lines) and return_request.status in (
        R.AUTHORIZED,
        R.IN_TRANSIT,
        R.REFUNDED,
    ):
        return return_transition(
            return_request=return_request, to=R.CLOSED, actor=actor, message=reason
        )
    _advance(return_request, actor)
    return return_request


@transaction.atomic
def return_inspect(
    *,
    return_line: ReturnLine,
    grade: str,
    quantity: int,
    restock_warehouse: Warehouse | None = None,
    disposition: str = "",
    reason: str = "",
    actor: Actor = None,
    idempotency_key: str = "",
) -> Inspection | None:
    """Grade received units. *Sellable* units move from quarantine into sellable stock
    (``stock_return_restock``, which pushes the new quantity to the channels); damaged or
    defective units are written off or sent back to the supplier, with a reason.

    A repeat with the same idempotency key grades nothing more and returns ``None``.
    Raises ``ReturnError`` for more units than wait for inspection, a missing reason or a
    quarantine warehouse as restock target.
    """
    return_request = _lock(return_line.return_request_id)
    if _applied_before(return_request, "inspected", idempotency_key):
        return None
    line = (
        ReturnLine.objects.select_for_update(of=("self",))
        .select_related("sku")
        .get(pk=return_line.pk)
    )
    waiting = line.quantity_received - line.quantity_inspected
    if not isinstance(quantity, int) or quantity <= 0 or quantity > waiting:
        raise ReturnError(
            f"{line}: {quantity!r} to inspect, {waiting} waiting.", code="invalid_inspection"
        )
    if grade not in Inspection.Grade.values:
        raise ReturnError(f"Unknown grade {grade!r}.", code="invalid_grade")
    if grade == Inspection.Grade.SELLABLE:
        disposition = Inspection.Disposition.RESTOCK
        target = restock_warehouse or return_request.order.warehouse
        if target is None or not target.is_sellable:
            raise ReturnError(
                "Choose a sellable warehouse to restock into.", code="restock_warehouse_required"
            )
        stock_return_restock(
            sku=line.sku,
            from_warehouse=return_request.quarantine,
            to_warehouse=target,
            quantity=quantity,
            reference=return_request.reference,
            reason=f"inspected sellable: {reason}".strip(": "),
            actor=actor,
        )
    else:
        disposition = disposition or Inspection.Disposition.WRITE_OFF
        if disposition == Inspection.Disposition.RESTOCK:
            raise ReturnError("Only sellable units can be restocked.", code="invalid_disposition")
        if not reason.strip():
            raise ReturnError("Say why the unit is damaged or defective.", code="reason_required")
        target = None
        stock_write_off(
            sku=line.sku,
            warehouse=return_request.quarantine,
            quantity=quantity,
            reason=f"{grade}: {reason} ({Inspection.Disposition(disposition).label.lower()})",
            reference=return_request.reference,
            actor=actor,
        )
    inspection = Inspection.objects.create(
        return_line=line,
        grade=grade,
        disposition=disposition,
        quantity=quantity,
        reason=reason,
        restock_warehouse=target,
        inspected_by=actor if isinstance(actor, AbstractBaseUser) else None,
    )
    line.quantity_inspected += quantity
    line.save(update_fields=["quantity_inspected"])
    return_event(
        return_request=return_request,
        kind="inspected",
        actor=actor,
        message=f"{quantity} x {line.sku.code}: {grade} -> {disposition}",
        line=line.pk,
        idempotency_key=idempotency_key,
    )
    _advance(return_request, actor)
    return inspection


def _refund_units(refund: Refund, line: ReturnLine, units: int, amount: Decimal) -> None:
    """Put ``units`` of ``line`` in ``refund``; the line counts them as refunded (never again)."""
    RefundLine.objects.create(refund=refund, return_line=line, quantity=units, amount=amount)
    line.quantity_refunded += units
    line.save(update_fields=["quantity_refunded"])


# Refunds whose money has gone back (through us, outside an API, or by the channel itself).
DONE_REFUND_STATES = [Refund.State.SENT, Refund.State.NOT_REQUIRED, Refund.State.BY_CHANNEL]


@dataclass(frozen=True)
class _Progress:
    received_all: bool  # every expected unit is in (nothing due)
    any_received: bool
    inspected: bool  # every expected unit received and inspected
    refunded: bool  # every unit refunded, or every received unit once all are in


def _progress(return_request: ReturnRequest) -> _Progress:
    lines = list(return_request.lines.all())
    done = dict(
        RefundLine.objects.filter(
            refund__return_request=return_request, refund__state__in=DONE_REFUND_STATES
        )
        .values("return_line")
        .annotate(units=Sum("quantity"))
        .values_list("return_line", "units")
    )
    received_all = not return_request.returnless and all(not ln.quantity_due for ln in lines)
    everything = all(done.get(ln.pk, 0) >= ln.quantity for ln in lines)
    what_came = received_all and all(done.get(ln.pk, 0) >= ln.quantity_received for ln in lines)
    return _Progress(
        received_all=received_all,
        any_received=any(ln.quantity_received for ln in lines),
        inspected=received_all
        and all(ln.quantity_inspected >= ln.quantity_received for ln in lines),
        refunded=everything or what_came,
    )


def _advance(return_request: ReturnRequest, actor: Actor) -> None:
    """Move a (locked) return on as far as its receipts, inspections and refunds allow:
    *refunded* once all its money is back, *inspected* once every expected unit is in and
    graded, *closed* once both are done (a returnless refund closes when refunded)."""

    def go(to: str) -> None:
        return_transition(return_request=return_request, to=to, actor=actor)

    p = _progress(return_request)
    status = return_request.status
    if status in (R.AUTHORIZED, R.IN_TRANSIT, R.RECEIVED) and p.refunded:
        go(R.REFUNDED)
        if return_request.returnless:
            go(R.CLOSED)
            return
        status = R.REFUNDED
    if status == R.RECEIVED and p.inspected:
        go(R.INSPECTED)
        status = R.INSPECTED
    if status == R.INSPECTED and p.refunded:
        go(R.REFUNDED)
        go(R.CLOSED)
    elif status == R.REFUNDED and p.inspected:
        if p.any_received:
            go(R.INSPECTED)
        go(R.CLOSED)


def _batch_amount(line: ReturnLine, units: int) -> Decimal:
    """Money back for ``units`` more of ``line``: its share of the line's refund, the last
    units taking what is left so the parts add up to the whole."""
    total = line.refund_total
    if line.quantity_refunded + units >= line.quantity:
        return max(total - _line_refunded_amount(line), Decimal("0"))
    return (total * units / line.quantity).quantize(CENT, rounding=ROUND_HALF_UP)


@transaction.atomic
def refund_queue(*, return_request: ReturnRequest, actor: Actor = None) -> Refund | None:
    """Queue one refund for every unit ready and not refunded yet (the received units, or
    all units of a returnless refund), plus shipping when agreed and not refunded before.

    Units are refunded at most once: each line counts its refunded units
    (``quantity_refunded``, within its quantity by a database constraint), and refunds are
    numbered per return (``refund_key`` unique). The channel call is made after commit by a
    task; a refund with nothing to pay back is recorded as not required.
    """
    return_request = _lock(return_request)
    lines = list(return_request.lines.select_for_update(of=("self",)))
    units = {}
    for line in lines:
        ready = line.quantity if return_request.returnless else line.quantity_received
        if ready > line.quantity_refunded:
            units[line.pk] = ready - line.quantity_refunded
    if not units:
        return None
    order = return_request.order
    shipping = (
        order.shipping_total
        if return_request.refund_shipping
        and not return_request.refunds.filter(shipping_amount__gt=0).exists()
        else Decimal("0")
    )
    refund_number = return_request.refunds.count() + 1
    try:
        with transaction.atomic():
            refund = Refund.objects.create(
                return_request=return_request,
                refund_key=f"{return_request.rma}-{refund_number}",
                currency=order.currency,
                shipping_amount=shipping,
            )
    except IntegrityError:
        raise ReturnError(
            f"A refund for {return_request.rma} is already under way.", code="refund_exists"
        ) from None
    amount = Decimal("0")
    for line in lines:
        if line.pk not in units:
            continue
        line_amount = _batch_amount(line, units[line.pk])
        _refund_units(refund, line, units[line.pk], line_amount)
        amount += line_amount
    refund.amount = amount
    refund.save(update_fields=["amount"])
    return_event(
        return_request=return_request,
        kind="refund_queued",
        actor=actor,
        message=f"{refund.total} {refund.currency} queued ({refund.refund_key})",
        refund=refund.pk,
        lines={str(pk): qty for pk, qty in units.items()},
    )
    if refund.total <= 0:
        refund.state, refund.error = Refund.State.NOT_REQUIRED, "nothing to pay back"
        refund.save(update_fields=["state", "error"])
        return refund
    transaction.on_commit(partial(nudge_task, settings.RETURNS_REFUND_TASK, refund.pk))
    return refund


@transaction.atomic
def refund_result(
    *, refund: Refund, ok: bool, channel_refund_id: str = "", error: str = "", final: bool = False
) -> Refund:
    """Record one attempt at sending a refund; a success moves the return on."""
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    refund.attempts += 1
    if ok:
        refund.state, refund.channel_refund_id = Refund.State.SENT, channel_refund_id
        refund.sent_at, refund.error = timezone.now(), ""
    else:
        refund.error = error[:2000]
        if final:
            refund.state = Refund.State.FAILED
    refund.save()
    return_request = _lock(refund.return_request_id)
    return_event(
        return_request=return_request,
        kind="refund_sent" if ok else "refund_failed",
        actor="channel sync",
        message=channel_refund_id if ok else error,
        refund=refund.pk,
    )
    if ok:
        _advance(return_request, "channel sync")
    return refund


@transaction.atomic
def refund_not_required(*, refund: Refund, reason: str) -> Refund:
    """The channel refunds another way (e.g. a webshop without an API connection)."""
    Refund.objects.filter(pk=refund.pk).update(state=Refund.State.NOT_REQUIRED, error=reason)
    refund.refresh_from_db()
    return_request = _lock(refund.return_request_id)
    return_event(
        return_request=return_request, kind="refund_not_required", actor="system", message=reason
    )
    _advance(return_request, "system")
    return refund


@transaction.atomic
def refunds_retry(*, return_request: ReturnRequest, actor: Actor) -> list[Refund]:
    """Send again the return's refunds that finally failed (the channel refused them or stayed
    down through every retry), once staff have fixed the cause. Each keeps its refund key, so
    a first attempt that did reach the channel is found there, not paid twice. Raises
    ``ReturnError`` when no refund of this return has failed."""
    return_request = _lock(return_request)
    failed = list(return_request.refunds.filter(state=Refund.State.FAILED).order_by("pk"))
    if not failed:
        raise ReturnError(
            f"Return {return_request.rma} has no failed refund to send again.",
            code="no_failed_refund",
        )
    for refund in failed:
        Refund.objects.filter(pk=refund.pk).update(state=Refund.State.PENDING)
        refund.state = Refund.State.PENDING
        return_event(
            return_request=return_request,
            kind="refund_retried",
            actor=actor,
            message=f"sending {refund.refund_key} again (last error: {refund.error})",
            refund=refund.pk,
        )
        transaction.on_commit(partial(nudge_task, settings.RETURNS_REFUND_TASK, refund.pk))
    return failed


# What a channel says about a return it reports, in the words of ``ChannelReturnState``.
CHANNEL_STATES = ("requested", "authorized", "rejected", "closed", "refunded")


@transaction.atomic
def return_channel_state_apply(
    *,
    return_request: ReturnRequest,
    state: str,
    actor: Actor,
    closed: bool = False,
    refund_id: str = "",
    refund_amount: Decimal | None = None,
    refund_shipping: Decimal = Decimal("0"),
    line_amounts: dict[int, Decimal] | None = None,
    new: bool = True,
) -> ReturnRequest:
    """Start a return just imported from a channel where the channel has it: still to be
    answered (the seller's rules decide), authorized, rejected, closed, or refunded by the
    channel itself. A channel refund is recorded as done by the channel (``refund_id``,
    ``refund_amount`` including ``refund_shipping``) for all the return's units, so nothing
    of it is ever refunded again by us; the goods may still be received. ``closed`` ends it.

    For a return seen before (``new`` off) only what cannot clash with our own handling is
    taken over: an answer the channel gave while the return still waits for ours, and a
    refund the channel made before any of ours was queued.
    """
    return_request = _lock(return_request)
    if state not in CHANNEL_STATES:
        return return_request
    if return_request.status != R.REQUESTED or not new:
        return _channel_state_update(
            return_request,
            state=state,
            actor=actor,
            closed=closed,
            refund_id=refund_id,
            refund_amount=refund_amount,
            refund_shipping=refund_shipping,
            line_amounts=line_amounts or {},
        )
    if state == "requested" and not closed:
        return _auto_decide(return_request, actor)
    note = f"{state} on the channel"
    return_request.responded_at = return_request.requested_at  # the channel answered it
    return_request.decision_note = note
    return_request.save(update_fields=["responded_at", "decision_note"])
    if state == "rejected":
        return_transition(return_request=return_request, to=R.REJECTED, actor=actor, message=note)
        return return_request
    if state in ("requested", "closed"):
        return return_transition(
            return_request=return_request, to=R.CLOSED, actor=actor, message=note
        )
    return_transition(return_request=return_request, to=R.AUTHORIZED, actor=actor, message=note)
    if state == "refunded":
        _channel_refund_record(
            return_request,
            actor=actor,
            refund_id=refund_id,
            amount=refund_amount,
            shipping=refund_shipping,
            line_amounts=line_amounts or {},
        )
        _advance(return_request, actor)
    if closed:
        return_transition(
            return_request=return_request, to=R.CLOSED, actor=actor, message="closed on the channel"
        )
    return return_request


def _channel_state_update(
    return_request: ReturnRequest,
    *,
    state: str,
    actor: Actor,
    closed: bool,
    refund_id: str,
    refund_amount: Decimal | None,
    refund_shipping: Decimal,
    line_amounts: dict[int, Decimal],
) -> ReturnRequest:
    """A return seen before, as the channel reports it now (see ``return_channel_state_apply``).

    A refund on the channel counts as the channel's own only while none of ours exists: once
    we queued one, the channel showing money back is (or may be) ours.
    """
    status = return_request.status
    if status == R.REQUESTED and state != "requested":
        return return_channel_state_apply(
            return_request=return_request,
            state=state,
            actor=actor,
            closed=closed,
            refund_id=refund_id,
            refund_amount=refund_amount,
            refund_shipping=refund_shipping,
            line_amounts=line_amounts,
            new=True,
        )
    if (
        state == "refunded"
        and status in (R.AUTHORIZED, R.IN_TRANSIT)
        and not return_request.returnless
        and not return_request.refunds.exists()
    ):
        _channel_refund_record(
            return_request,
            actor=actor,
            refund_id=refund_id,
            amount=refund_amount,
            shipping=refund_shipping,
            line_amounts=line_amounts,
        )
        _advance(return_request, actor)
        if closed:
            return_transition(
                return_request=return_request,
                to=R.CLOSED,
                actor=actor,
                message="closed on the channel",
            )
    return return_request


def _channel_refund_record(
    return_request: ReturnRequest,
    *,
    actor: Actor,
    refund_id: str,
    amount: Decimal | None,
    shipping: Decimal,
    line_amounts: dict[int, Decimal],
) -> Refund:
    lines = list(return_request.lines.select_for_update(of=("self",)))
    parts = {
        line.pk: line_amounts.get(line.pk, line.paid) for line in lines
    }  # what went back per line, where the channel does not say: what was paid
    goods = sum(parts.values(), Decimal("0"))
    if amount is not None and amount - shipping >= 0:
        goods = amount - shipping
    refund = Refund.objects.create(
        return_request=return_request,
        refund_key=f"{return_request.rma}-channel",
        currency=return_request.order.currency,
        amount=goods,
        shipping_amount=shipping,
        state=Refund.State.BY_CHANNEL,
        channel_refund_id=refund_id[:100],
        sent_at=return_request.requested_at,
    )
    for line in lines:
        units = line.quantity - line.quantity_refunded
        if units <= 0:
            continue
        _refund_units(refund, line, units, parts[line.pk])
    return_event(
        return_request=return_request,
        kind="refunded_by_channel",
        actor=actor,
        message=f"{refund.total} {refund.currency} refunded by the channel ({refund_id})",
        refund=refund.pk,
    )
    return refund


def return_answer_alerts_raise(*, now: datetime | None = None) -> list[ReturnAlert]:
    """Raise one alert per return still unanswered close to its 48 hours (within
    ``RETURNS_ALERT_BEFORE_HOURS``), e-mailed to the returns contact."""
    now = now or timezone.now()
    horizon = now + timedelta(hours=settings.RETURNS_ALERT_BEFORE_HOURS)
    due = ReturnRequest.objects.filter(
        status=R.REQUESTED, respond_by__lte=horizon, alert__isnull=True
    ).select_related("order", "channel")
    raised = []
    for return_request in due:
        alert, created = ReturnAlert.objects.get_or_create(return_request=return_request)
        if created:
            raised.append(alert)
    contact = settings.RETURNS_CONTACT_EMAIL
    if raised and contact:
        send_mail(
            subject=f"{len(raised)} return request(s) close to 48 hours without an answer",
            message="\n".join(
                f"{a.return_request.rma} ({a.return_request.channel.code} "
                f"{a.return_request.order.external_id}): answer by "
                f"{a.return_request.respond_by:%Y-%m-%d %H:%M} UTC"
                for a in raised
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[contact],
        )
        ReturnAlert.objects.filter(pk__in=[a.pk for a in raised]).update(emailed_to=contact)
    return raised


def late_answers_record(*, day) -> list[LateAnswerDaily]:
    """Count, per channel, the requests answered on ``day`` and those answered late."""
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    answered = ReturnRequest.objects.filter(
        responded_at__gte=start, responded_at__lt=start + timedelta(days=1)
    ).exclude(fulfillment_model=FulfillmentModel.FBA)
    totals: dict[int, list[int]] = {}
    for channel_id, responded_at, respond_by in answered.values_list(
        "channel_id", "responded_at", "respond_by"
    ):
        counts = totals.setdefault(channel_id, [0, 0])
        counts[0] += 1
        counts[1] += responded_at > respond_by
    rows = []
    for channel_id, (total, late) in totals.items():
        row, _ = LateAnswerDaily.objects.update_or_create(
            channel_id=channel_id, day=day, defaults={"answered": total, "answered_late": late}
        )
        rows.append(row)
    return rows
