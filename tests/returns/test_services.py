"""Returns: state machine, automatic decisions, quarantine before inspection, refunds once."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail

from inventory.models import StockLevel
from inventory.selectors import stock_available
from returns import services as svc
from returns.exceptions import InvalidReturnTransition, ReturnError
from returns.models import (
    RETURN_TRANSITIONS,
    AutoDecisionRule,
    Refund,
    RefundLine,
    ReturnAlert,
    ReturnRequest,
    ReturnStatus,
)

pytestmark = pytest.mark.django_db
R = ReturnStatus


def open_return(order, reason="SIZE", qty=(1, 1), **kw):
    tee_line, mug_line = order.lines.order_by("id")
    lines = [(tee_line, qty[0])] + ([(mug_line, qty[1])] if qty[1] else [])
    return svc.return_request_create(order=order, lines=lines, reason_code=reason, **kw)


def level(sku, warehouse):
    return StockLevel.objects.get(sku=sku, warehouse=warehouse)


@pytest.mark.parametrize("source", list(R))
@pytest.mark.parametrize("target", list(R))
def test_every_transition_is_allowed_or_refused(shipped_order, source, target):
    return_request = open_return(shipped_order)
    ReturnRequest.objects.filter(pk=return_request.pk).update(status=source)
    return_request.refresh_from_db()
    if target in RETURN_TRANSITIONS[source]:
        svc.return_transition(return_request=return_request, to=target, actor="t")
        assert ReturnRequest.objects.get(pk=return_request.pk).status == target
        assert return_request.events.filter(kind="status", to_status=target).exists()
    else:
        with pytest.raises(InvalidReturnTransition):
            svc.return_transition(return_request=return_request, to=target, actor="t")
        assert ReturnRequest.objects.get(pk=return_request.pk).status == source


def test_request_gets_48_hours_and_waits_for_staff_without_rules(shipped_order):
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    return_request = open_return(shipped_order, requested_at=at)
    assert return_request.respond_by == at + timedelta(hours=48)
    assert return_request.status == R.REQUESTED
    assert return_request.events.filter(kind="left_to_staff").exists()
    assert return_request.rma.startswith("RMA-")


def test_cannot_return_more_than_shipped(shipped_order):
    tee_line = shipped_order.lines.get(seller_sku="TEE")
    with pytest.raises(ReturnError):
        svc.return_request_create(order=shipped_order, lines=[(tee_line, 3)])
    open_return(shipped_order, qty=(2, 0))
    with pytest.raises(ReturnError):
        svc.return_request_create(order=shipped_order, lines=[(tee_line, 1)])


def test_rule_approves_fashion_under_a_value_and_records_itself(setup, shipped_order):
    rule = AutoDecisionRule.objects.create(
        name="fashion under 50", category="fashion", max_value=Decimal("50")
    )
    return_request = open_return(shipped_order, qty=(2, 0))  # 2 x 12.50 = 25.00
    assert return_request.status == R.AUTHORIZED
    assert return_request.decided_by_rule == rule
    assert return_request.responded_at is not None
    assert "fashion under 50" in return_request.events.get(to_status=R.AUTHORIZED).actor_label


def test_rule_does_not_match_mixed_categories_or_high_value(setup, shipped_order):
    AutoDecisionRule.objects.create(name="fashion", category="fashion", max_value=Decimal("20"))
    mixed = open_return(shipped_order, qty=(1, 1))
    assert mixed.status == R.REQUESTED and mixed.decided_by_rule is None


def test_rule_reason_codes(setup, shipped_order):
    AutoDecisionRule.objects.create(name="defects", reason_codes="DEFECTIVE, DAMAGED")
    assert open_return(shipped_order, reason="size", qty=(1, 0)).status == R.REQUESTED
    assert open_return(shipped_order, reason="damaged", qty=(1, 0)).status == R.AUTHORIZED


def test_returnless_refund_under_a_small_value(setup, shipped_order):
    AutoDecisionRule.objects.create(
        name="cheap", action="returnless_refund", max_value=Decimal("15"), priority=1
    )
    return_request = open_return(shipped_order, qty=(1, 0))
    assert return_request.status == R.AUTHORIZED and return_request.returnless
    refund = return_request.refunds.get()
    assert refund.amount == Decimal("12.50") and refund.state == "pending"
    with pytest.raises(ReturnError):
        svc.return_receive(return_request=return_request)


def test_receipt_goes_to_quarantine_and_is_never_available(setup, shipped_order):
    return_request = open_return(shipped_order, qty=(2, 1))
    svc.return_request_authorize(return_request=return_request, actor="cs")
    before = stock_available(sku=setup["tee"])
    svc.return_receive(return_request=return_request, actor="dock")
    return_request.refresh_from_db()
    assert return_request.status == R.RECEIVED
    assert level(setup["tee"], setup["quarantine"]).on_hand == 2
    assert stock_available(sku=setup["tee"]) == before  # nothing sellable before inspection
    assert return_request.refunds.get().amount == Decimal("37.50")


def test_receive_is_idempotent_with_a_key(setup, shipped_order):
    return_request = open_return(shipped_order, qty=(2, 0))
    svc.return_request_authorize(return_request=return_request)
    line = return_request.lines.get()
    svc.return_receive(return_request=return_request, lines={line.pk: 1}, idempotency_key="k1")
    svc.return_receive(return_request=return_request, lines={line.pk: 1}, idempotency_key="k1")
    assert level(setup["tee"], setup["quarantine"]).on_hand == 1


def test_inspection_restocks_sellable_and_writes_off_damaged(setup, shipped_order):
    return_request = open_return(shipped_order, qty=(2, 1))
    svc.return_request_authorize(return_request=return_request)
    svc.return_receive(return_request=return_request)
    tee_line = return_request.lines.get(order_line__seller_sku="TEE")
    mug_line = return_request.lines.get(order_line__seller_sku="MUG")
    sellable_before = stock_available(sku=setup["tee"])
    svc.return_inspect(return_line=tee_line, grade="sellable", quantity=1, actor="qa")
    assert stock_available(sku=setup["tee"]) == sellable_before + 1
    with pytest.raises(ReturnError) as err:
        svc.return_inspect(return_line=tee_line, grade="damaged", quantity=1)
    assert err.value.code == "reason_required"
    svc.return_inspect(return_line=tee_line, grade="damaged", quantity=1, reason="torn seam")
    svc.return_inspect(
        return_line=mug_line,
        grade="defective",
        quantity=1,
        reason="chipped",
        disposition="return_to_supplier",
    )
    assert level(setup["tee"], setup["quarantine"]).on_hand == 0
    assert stock_available(sku=setup["tee"]) == sellable_before + 1
    return_request.refresh_from_db()
    assert return_request.status == R.INSPECTED
    with pytest.raises(ReturnError):
        svc.return_inspect(return_line=tee_line, grade="sellable", quantity=1)


def test_refund_once_per_return_line_and_closing(setup, shipped_order):
    return_request = open_return(shipped_order, qty=(1, 0))
    svc.return_request_authorize(return_request=return_request)
    svc.return_receive(return_request=return_request)
    refund = return_request.refunds.get()
    assert svc.refund_queue(return_request=return_request) is None  # nothing left to refund
    assert RefundLine.objects.count() == 1
    svc.refund_result(refund=refund, ok=True, channel_refund_id="ch-1")
    return_request.refresh_from_db()
    assert return_request.status == R.REFUNDED
    svc.return_inspect(return_line=return_request.lines.get(), grade="sellable", quantity=1)
    return_request.refresh_from_db()
    assert return_request.status == R.CLOSED
    assert Refund.objects.get().state == "sent"


def test_reject_needs_reason_and_answers(shipped_order):
    return_request = open_return(shipped_order)
    with pytest.raises(ReturnError):
        svc.return_request_reject(return_request=return_request, reason=" ")
    svc.return_request_reject(return_request=return_request, reason="outside return window")
    return_request.refresh_from_db()
    assert return_request.status == R.REJECTED and return_request.responded_at


def test_fba_return_is_recorded_not_received(setup):
    from inventory.models import Warehouse
    from oms.services.ingestion import order_ingest
    from tests.oms.conftest import make_record

    fba = Warehouse.objects.create(code="fba", kind=Warehouse.Kind.FBA)
    from inventory.services import stock_receive

    stock_receive(sku=setup["tee"], warehouse=fba, quantity=3)
    setup["shop"].fba_warehouse = fba
    setup["shop"].save()
    order = order_ingest(
        channel=setup["shop"], record=make_record("F-1", model="FBA", lines=(("TEE", 1),))
    ).order
    return_request = svc.return_request_create(
        order=order, lines=[(order.lines.get(), 1)], channel_return_id="amz-r-1"
    )
    assert return_request.status == R.CLOSED and return_request.fulfillment_model == "FBA"
    assert not StockLevel.objects.filter(warehouse=setup["quarantine"]).exists()
    again = svc.return_request_create(
        order=order, lines=[(order.lines.get(), 1)], channel_return_id="amz-r-1"
    )
    assert again.pk == return_request.pk


def test_late_answer_alerts_raised_once(settings, shipped_order):
    settings.RETURNS_CONTACT_EMAIL = "returns@example.com"
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    return_request = open_return(shipped_order, requested_at=at)
    assert svc.return_answer_alerts_raise(now=at + timedelta(hours=30)) == []
    raised = svc.return_answer_alerts_raise(now=at + timedelta(hours=37))
    assert [a.return_request for a in raised] == [return_request]
    assert svc.return_answer_alerts_raise(now=at + timedelta(hours=40)) == []
    assert ReturnAlert.objects.count() == 1
    assert len(mail.outbox) == 1 and return_request.rma in mail.outbox[0].body


def test_daily_late_answer_figure(shipped_order):
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    on_time = open_return(shipped_order, qty=(1, 0), requested_at=at)
    late = open_return(shipped_order, qty=(1, 0), requested_at=at - timedelta(hours=60))
    for r in (on_time, late):
        svc.return_request_authorize(return_request=r)
        ReturnRequest.objects.filter(pk=r.pk).update(responded_at=at + timedelta(hours=1))
    [row] = svc.late_answers_record(day=(at + timedelta(hours=1)).date())
    assert (row.answered, row.answered_late) == (2, 1)


def test_rule_priority_decides_between_two_matching_rules(setup, shipped_order):
    # Both rules match a 12.50 fashion return; the lower priority number is tried first,
    # whatever order the rules were made in.
    approve = AutoDecisionRule.objects.create(
        name="approve fashion", category="fashion", priority=5
    )
    refund = AutoDecisionRule.objects.create(
        name="refund cheap", action="returnless_refund", max_value=Decimal("20"), priority=1
    )
    first = open_return(shipped_order, qty=(1, 0))
    assert first.decided_by_rule == refund and first.returnless

    AutoDecisionRule.objects.filter(pk=approve.pk).update(priority=0)
    second = open_return(shipped_order, qty=(1, 0))
    assert second.decided_by_rule == approve and not second.returnless
    assert second.status == R.AUTHORIZED


def test_partial_receipts_each_refunded_and_the_return_waits_for_the_rest(
    setup, shipped_order, django_capture_on_commit_callbacks
):
    return_request = open_return(shipped_order, qty=(2, 1))
    svc.return_request_authorize(return_request=return_request)
    tee = return_request.lines.get(order_line__seller_sku="TEE")
    mug = return_request.lines.get(order_line__seller_sku="MUG")

    # The refund tasks run after each commit (this channel has no API: "not required").
    with django_capture_on_commit_callbacks(execute=True):
        svc.return_receive(return_request=return_request, lines={tee.pk: 1}, idempotency_key="a")
    return_request.refresh_from_db()
    assert return_request.status == R.RECEIVED  # one of three units in: still open
    first = return_request.refunds.get()
    assert first.state == "not_required" and first.amount == Decimal("12.50")

    with django_capture_on_commit_callbacks(execute=True):  # a retried receipt: nothing more
        svc.return_receive(return_request=return_request, lines={tee.pk: 1}, idempotency_key="a")
    assert return_request.refunds.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        svc.return_receive(return_request=return_request, idempotency_key="b")  # the rest
    return_request.refresh_from_db()
    assert return_request.status == R.REFUNDED
    second = return_request.refunds.exclude(pk=first.pk).get()
    assert {(rl.return_line_id, rl.quantity) for rl in second.lines.all()} == {
        (tee.pk, 1),
        (mug.pk, 1),
    }
    assert second.amount == Decimal("25.00")
    assert svc.refund_queue(return_request=return_request) is None  # every unit refunded once
    tee.refresh_from_db()
    assert (tee.quantity_received, tee.quantity_refunded) == (2, 2)

    svc.return_inspect(return_line=tee, grade="sellable", quantity=2)
    svc.return_inspect(return_line=mug, grade="damaged", quantity=1, reason="chipped")
    return_request.refresh_from_db()
    assert return_request.status == R.CLOSED


def test_a_line_is_never_refunded_for_more_units_than_it_has(setup, shipped_order):
    from django.db import IntegrityError, transaction

    return_request = open_return(shipped_order, qty=(1, 0))
    line = return_request.lines.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        type(line).objects.filter(pk=line.pk).update(quantity_refunded=2)


def test_staff_stop_waiting_for_the_rest(setup, shipped_order, django_capture_on_commit_callbacks):
    return_request = open_return(shipped_order, qty=(2, 1))
    svc.return_request_authorize(return_request=return_request)
    tee = return_request.lines.get(order_line__seller_sku="TEE")
    with django_capture_on_commit_callbacks(execute=True):
        svc.return_receive(return_request=return_request, lines={tee.pk: 1})
    svc.return_inspect(return_line=tee, grade="sellable", quantity=1)
    return_request.refresh_from_db()
    assert return_request.status == R.RECEIVED  # two units still expected

    with pytest.raises(ReturnError):
        svc.return_receiving_close(return_request=return_request, reason=" ")
    svc.return_receiving_close(
        return_request=return_request, reason="buyer kept the rest", actor="cs"
    )
    return_request.refresh_from_db()
    assert return_request.status == R.CLOSED  # refunded what came, inspected it: done
    assert return_request.refunds.get().amount == Decimal("12.50")  # the rest not refunded
    assert [line.quantity_not_returned for line in return_request.lines.all()] == [1, 1]
    with pytest.raises(InvalidReturnTransition):
        svc.return_receive(return_request=return_request)


def test_staff_stop_waiting_for_a_return_that_never_came(setup, shipped_order):
    return_request = open_return(shipped_order, qty=(1, 0))
    svc.return_request_authorize(return_request=return_request)
    svc.return_receiving_close(return_request=return_request, reason="lost in transit")
    return_request.refresh_from_db()
    assert return_request.status == R.CLOSED and not return_request.refunds.exists()


def test_partial_amount_per_line_never_above_what_was_paid(setup, shipped_order):
    return_request = open_return(shipped_order, qty=(2, 1))
    tee = return_request.lines.get(order_line__seller_sku="TEE")  # 2 x 12.50 paid
    with pytest.raises(ReturnError) as err:
        svc.return_request_authorize(
            return_request=return_request, line_amounts={tee.pk: Decimal("25.01")}
        )
    assert err.value.code == "invalid_refund_amount"
    assert ReturnRequest.objects.get(pk=return_request.pk).status == R.REQUESTED
    svc.return_request_authorize(
        return_request=return_request, line_amounts={tee.pk: Decimal("20.00")}
    )
    svc.return_receive(return_request=return_request, lines={tee.pk: 1})
    first = return_request.refunds.get()
    assert first.lines.get().amount == Decimal("10.00")  # half the units, half the amount
    svc.return_receive(return_request=return_request)
    second = return_request.refunds.exclude(pk=first.pk).get()
    amounts = {rl.return_line.order_line.seller_sku: rl.amount for rl in second.lines.all()}
    assert amounts == {"TEE": Decimal("10.00"), "MUG": Decimal("12.50")}
    with pytest.raises(ReturnError):  # every TEE unit is refunded: too late to change it
        svc.return_refund_terms_set(
            return_request=return_request, line_amounts={tee.pk: Decimal("5")}
        )


def test_inspect_with_the_same_idempotency_key_grades_once(setup, shipped_order):
    return_request = open_return(shipped_order, qty=(2, 0))
    svc.return_request_authorize(return_request=return_request)
    svc.return_receive(return_request=return_request)
    line = return_request.lines.get()
    first = svc.return_inspect(return_line=line, grade="sellable", quantity=1, idempotency_key="i")
    again = svc.return_inspect(return_line=line, grade="sellable", quantity=1, idempotency_key="i")
    assert first is not None and again is None
    line.refresh_from_db()
    assert line.quantity_inspected == 1 and line.inspections.count() == 1


def test_a_rule_can_refund_shipping(setup, shipped_order):
    type(shipped_order).objects.filter(pk=shipped_order.pk).update(shipping_total=Decimal("4.99"))
    AutoDecisionRule.objects.create(
        name="cheap, with shipping",
        action="returnless_refund",
        max_value=Decimal("15"),
        refund_shipping=True,
    )
    return_request = open_return(shipped_order, qty=(1, 0))
    assert return_request.refund_shipping
    refund = return_request.refunds.get()
    assert (refund.amount, refund.shipping_amount) == (Decimal("12.50"), Decimal("4.99"))
    AutoDecisionRule.objects.update(refund_shipping=False)
    assert open_return(shipped_order, qty=(1, 0)).refunds.get().shipping_amount == 0
