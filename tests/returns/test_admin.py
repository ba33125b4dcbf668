"""Returns admin: the queue (order, badges, filters, search, bounded queries), bulk decisions,
the return page and its buttons, the receive and inspect scanner pages, and who may do what.
Everything is set up through the services."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from inventory import services as stock
from inventory.models import SKU, StockLevel
from inventory.selectors import stock_available
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create
from returns import services as svc
from returns.admin import answer_countdown, hours_text
from returns.models import (
    AutoDecisionRule,
    Inspection,
    LateAnswerDaily,
    Refund,
    ReturnAlert,
    ReturnRequest,
    ReturnStatus,
)
from tests.factories import StaffUserFactory, SuperUserFactory
from tests.oms.conftest import make_record

pytestmark = pytest.mark.django_db
R = ReturnStatus
QUEUE = "admin:returns_returnrequest_changelist"
RECEIVE = "admin:returns_returnrequest_receive"
INSPECT = "admin:returns_returnrequest_inspect"
TEE_GTIN = "4006381333931"


# -- data -------------------------------------------------------------------------------------


def shipped(setup, order_id: str, lines=(("TEE", 1),), n: int = 1):
    order = order_ingest(channel=setup["shop"], record=make_record(order_id, lines=lines)).order
    shipment_create(order=order, carrier_code="AMAZON", tracking_number=f"TBA{n:012d}")
    order.refresh_from_db()
    return order


def open_return(order, *, tee: int = 1, mug: int = 0, hours_ago: float = 1, **kwargs):
    lines = order.lines.order_by("id")
    wanted = [(line, qty) for line, qty in zip(lines, (tee, mug), strict=False) if qty]
    return svc.return_request_create(
        order=order,
        lines=wanted,
        reason_code=kwargs.pop("reason_code", "SIZE"),
        requested_at=timezone.now() - timedelta(hours=hours_ago),
        **kwargs,
    )


def authorized(order, **kwargs) -> ReturnRequest:
    return_request = open_return(order, **kwargs)
    return svc.return_request_authorize(return_request=return_request, actor="cs")


def refreshed(return_request: ReturnRequest) -> ReturnRequest:
    return ReturnRequest.objects.get(pk=return_request.pk)


def on_hand(sku_code: str, warehouse) -> int:
    level = StockLevel.objects.filter(sku__code=sku_code, warehouse=warehouse).first()
    return level.on_hand if level else 0


@pytest.fixture
def barcoded(setup):
    SKU.objects.filter(code="TEE").update(barcode=TEE_GTIN)
    return setup


@pytest.fixture
def su_client(client):
    client.force_login(SuperUserFactory())
    return client


def role_client(client, role: str):
    client.force_login(StaffUserFactory(groups=[role]))
    return client


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def rows(response) -> str:
    html = response.content.decode()
    start = html.find('id="result_list"')
    return html[start:] if start >= 0 else ""


def rmas_in(response) -> list[str]:
    """The RMAs of the queue's rows, in order (each row names its RMA once)."""
    return re.findall(r'<th class="field-rma"><a [^>]*>(RMA-[0-9A-F]{8})</a>', rows(response))


def queue(client, **params):
    return client.get(reverse(QUEUE), params)


def act(client, action: str, selected: list[ReturnRequest], **extra):
    data = {"action": action, "_selected_action": [r.pk for r in selected], **extra}
    return client.post(reverse(QUEUE), data, follow=True)


# -- the queue ----------------------------------------------------------------------------------


@pytest.fixture
def queue_returns(setup, shipped_order):
    """Four requests: OVERDUE (3h past its 48h), RISK (5h left, under the 12h alert window),
    CALM (31h left) and DONE (approved); seconds to spare so the texts hold for a minute."""
    second = shipped(setup, "R-2", lines=(("TEE", 2), ("MUG", 1)), n=2)
    overdue = open_return(shipped_order, hours_ago=51 + 10 / 60)
    risk = open_return(shipped_order, tee=1, mug=1, hours_ago=43 - 10 / 60)
    calm = open_return(second, tee=2, hours_ago=17 - 10 / 60, reason_code="DAMAGED")
    done = authorized(second, tee=0, mug=1, hours_ago=60)
    return {"overdue": overdue, "risk": risk, "calm": calm, "done": done}


def test_queue_sorts_by_time_to_answer_with_badges(su_client, queue_returns, settings):
    settings.RETURNS_ALERT_BEFORE_HOURS = 12
    response = queue(su_client)

    assert response.status_code == 200
    r = queue_returns
    order = [r["done"].rma, r["overdue"].rma, r["risk"].rma, r["calm"].rma]
    found = rmas_in(response)
    assert [rma for rma in found if rma in order] == order
    html = rows(response)
    assert 'returns-answer-overdue" title="answer by' in html
    assert ">overdue 3h<" in html
    assert 'returns-answer-at-risk"' in html and ">at risk: 5h left<" in html
    assert 'returns-answer-on-time"' in html and ">31h left<" in html
    assert 'returns-answer-answered-late"' in html and "answered 12h late" in html
    assert 'class="oms-badge returns-status-requested">Requested<' in html
    assert 'class="oms-badge returns-status-authorized">Authorized<' in html
    assert "25.00 USD" in html  # CALM: 2 x 12.50
    assert "DAMAGED" in html
    assert ">shop<" in html and ">R-2<" in html


@pytest.mark.parametrize(
    ("minutes_left", "state", "text"),
    [
        (-185, "overdue", "overdue 3h"),
        (-5, "overdue", "overdue 5m"),
        (0, "overdue", "overdue 0m"),
        (5 * 60 + 10, "at_risk", "at risk: 5h left"),
        (12 * 60, "at_risk", "at risk: 12h left"),
        (12 * 60 + 1, "on_time", "12h left"),
        (31 * 60 + 10, "on_time", "31h left"),
    ],
)
def test_answer_countdown(settings, minutes_left, state, text):
    settings.RETURNS_ALERT_BEFORE_HOURS = 12
    now = timezone.now()
    request = ReturnRequest(status=R.REQUESTED, respond_by=now + timedelta(minutes=minutes_left))

    assert answer_countdown(request, now=now) == (state, text)


def test_answered_returns_show_when_they_were_answered():
    now = timezone.now()
    on_time = ReturnRequest(status=R.AUTHORIZED, respond_by=now, responded_at=now)
    late = ReturnRequest(
        status=R.REJECTED, respond_by=now, responded_at=now + timedelta(hours=2, minutes=5)
    )

    assert answer_countdown(on_time, now=now) == ("answered", "answered")
    assert answer_countdown(late, now=now) == ("answered_late", "answered 2h late")
    assert hours_text(timedelta(minutes=59)) == "59m"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"answer": "overdue"}, ["overdue"]),
        ({"answer": "at_risk"}, ["risk"]),
        ({"answer": "on_time"}, ["calm"]),
        ({"status__exact": "authorized"}, ["done"]),
        ({"fulfillment_model__exact": "FBM"}, ["done", "overdue", "risk", "calm"]),
        ({"fulfillment_model__exact": "FBA"}, []),
    ],
)
def test_filters(su_client, queue_returns, settings, params, expected):
    settings.RETURNS_ALERT_BEFORE_HOURS = 12
    response = queue(su_client, **params)

    assert response.status_code == 200
    assert rmas_in(response) == [queue_returns[name].rma for name in expected]


def test_channel_filter(su_client, queue_returns, setup):
    assert len(rmas_in(queue(su_client, channel__id__exact=setup["shop"].pk))) == 4
    assert queue(su_client, channel__id__exact=setup["shop"].pk + 99).status_code == 200


def test_search_by_rma_order_id_and_sku(su_client, queue_returns):
    r = queue_returns

    assert rmas_in(queue(su_client, q=r["risk"].rma)) == [r["risk"].rma]
    assert rmas_in(queue(su_client, q=r["risk"].rma.lower())) == [r["risk"].rma]
    assert rmas_in(queue(su_client, q="R-2")) == [r["done"].rma, r["calm"].rma]
    # Each return once, although RISK has two lines and MUG is on two returns.
    assert rmas_in(queue(su_client, q="MUG")) == [r["done"].rma, r["risk"].rma]
    assert rmas_in(queue(su_client, q="RMA-NOPE")) == []


def test_queue_query_count_is_bounded_and_does_not_grow_with_rows(
    su_client, setup, django_assert_max_num_queries
):
    def make(count: int, start: int) -> None:
        for n in range(start, start + count):
            order = shipped(setup, f"Q-{n:04d}", lines=(("TEE", 1), ("MUG", 1)), n=100 + n)
            return_request = open_return(order, tee=1, mug=1, hours_ago=n % 40)
            if n % 3 == 0:
                svc.return_request_authorize(return_request=return_request)
                svc.return_receive(return_request=return_request)
            if n % 4 == 0:
                # Test set-up only: an inactive rule, named on the row like a decided return.
                rule, _ = AutoDecisionRule.objects.get_or_create(
                    name="rule", defaults={"is_active": False}
                )
                ReturnRequest.objects.filter(pk=return_request.pk).update(decided_by_rule=rule)

    stock.stock_receive(sku=setup["tee"], warehouse=setup["nyc"], quantity=100)
    stock.stock_receive(sku=setup["mug"], warehouse=setup["nyc"], quantity=100)
    make(3, 0)
    views = [{}, {"status__exact": "requested"}, {"q": "TEE"}, {"answer": "overdue"}]
    few = {}
    for params in views:
        with django_assert_max_num_queries(12) as captured:
            assert queue(su_client, **params).status_code == 200
        few[str(params)] = len(captured)
    make(15, 3)
    for params in views:
        with django_assert_max_num_queries(12) as captured:
            assert queue(su_client, **params).status_code == 200
        assert len(captured) == few[str(params)], params
    assert rows(queue(su_client)).count("oms-badge") == 18


# -- bulk decisions -----------------------------------------------------------------------------


def test_bulk_approve_approves_and_names_each_refusal(su_client, setup, shipped_order):
    waiting = open_return(shipped_order, tee=1)
    rejected = open_return(shipped_order, tee=1)
    svc.return_request_reject(return_request=rejected, reason="worn", actor="cs")

    response = act(su_client, "approve_returns", [waiting, rejected])

    assert response.status_code == 200
    messages = texts(response)
    assert "Approved: 1 return(s)." in messages
    assert any(rejected.rma in m and "Rejected" in m for m in messages)
    assert refreshed(waiting).status == R.AUTHORIZED
    assert refreshed(waiting).responded_at is not None
    assert refreshed(rejected).status == R.REJECTED
    event = refreshed(waiting).events.get(to_status=R.AUTHORIZED)
    assert event.actor_label.startswith("admin")


def test_bulk_reject_asks_for_a_reason_then_rejects(su_client, setup, shipped_order):
    first = open_return(shipped_order, tee=1)
    approved = authorized(shipped_order, tee=1)

    form = act(su_client, "reject_returns", [first, approved])
    assert form.status_code == 200
    html = form.content.decode()
    assert 'id="bulk-action-form"' in html and first.rma in html and approved.rma in html
    assert refreshed(first).status == R.REQUESTED

    again = act(su_client, "reject_returns", [first, approved], apply="Reject", reason=" ")
    assert 'id="bulk-action-form"' in again.content.decode()
    assert refreshed(first).status == R.REQUESTED

    done = act(su_client, "reject_returns", [first, approved], apply="Reject", reason="worn")
    messages = texts(done)
    assert "Rejected: 1 return(s)." in messages
    assert any(approved.rma in m and "Authorized" in m for m in messages)
    assert refreshed(first).status == R.REJECTED
    assert refreshed(first).decision_note == "worn"
    assert refreshed(approved).status == R.AUTHORIZED


def test_bulk_decisions_need_decide_permission(client, setup, shipped_order):
    waiting = open_return(shipped_order, tee=1)
    client = role_client(client, "Warehouse")

    html = queue(client).content.decode()
    assert "approve_returns" not in html and "reject_returns" not in html
    act(client, "approve_returns", [waiting])
    assert refreshed(waiting).status == R.REQUESTED


# -- the return page ----------------------------------------------------------------------------


def change_url(return_request: ReturnRequest) -> str:
    return reverse("admin:returns_returnrequest_change", args=[return_request.pk])


def test_return_page_shows_lines_inspections_refunds_and_timeline(su_client, setup, shipped_order):
    return_request = authorized(shipped_order, tee=2, mug=1)
    svc.return_receive(return_request=return_request, actor="dock")
    tee_line = return_request.lines.get(sku__code="TEE")
    svc.return_inspect(return_line=tee_line, grade="damaged", quantity=1, reason="torn seam")

    response = su_client.get(change_url(return_request))

    assert response.status_code == 200
    html = response.content.decode()
    lines = html[html.index('id="return-lines"') : html.index('id="return-refunds"')]
    assert "TEE" in lines and "MUG" in lines
    assert re.search(
        r'oms-num">2</td>\s*<td class="oms-num">2</td>\s*<td class="oms-num">1<', lines
    )
    assert "1 x Damaged &rarr; Written off: torn seam" in lines
    refunds = html[html.index('id="return-refunds"') : html.index('id="return-timeline"')]
    assert f"{return_request.rma}-1" in refunds and "37.50 USD" in refunds
    assert "Waiting to be sent" in refunds
    timeline = html[html.index('id="return-timeline"') :]
    for kind in ("requested", "left_to_staff", "received", "refund_queued", "inspected"):
        assert f"returns-event-{kind}" in timeline
    assert "Requested &rarr; Authorized" in timeline
    assert "Authorized &rarr; Received" in timeline
    # Read-only: no save buttons, no editable inputs for the return's fields.
    assert 'name="_save"' not in html
    assert 'name="status"' not in html
    # Inspect offered for the two units still waiting; nothing left to receive.
    assert f"inspect/?rma={return_request.rma}" in html
    assert f"receive/?rma={return_request.rma}" not in html


def test_return_page_buttons_follow_status(su_client, setup, shipped_order):
    waiting = open_return(shipped_order, tee=1)
    html = su_client.get(change_url(waiting)).content.decode()
    assert ">Approve</button>" in html and ">Reject</a>" in html
    assert "Mark in transit" not in html and "receive/?rma=" not in html

    approved = authorized(shipped_order, tee=1)
    html = su_client.get(change_url(approved)).content.decode()
    assert ">Approve</button>" not in html
    assert ">Mark in transit</a>" in html and f"receive/?rma={approved.rma}" in html


def test_approve_button_and_reject_and_in_transit_forms(su_client, setup, shipped_order):
    first = open_return(shipped_order, tee=1)
    second = open_return(shipped_order, tee=1)

    response = su_client.post(
        reverse("admin:returns_returnrequest_approve", args=[first.pk]), follow=True
    )
    assert f"Approved {first.rma}." in texts(response)
    assert refreshed(first).status == R.AUTHORIZED
    again = su_client.post(
        reverse("admin:returns_returnrequest_approve", args=[first.pk]), follow=True
    )
    assert any("cannot go from Authorized to Authorized" in m for m in texts(again))

    reject_url = reverse("admin:returns_returnrequest_reject", args=[second.pk])
    assert 'id="return-action-form"' in su_client.get(reject_url).content.decode()
    blank = su_client.post(reject_url, {"reason": ""})
    assert blank.status_code == 200 and refreshed(second).status == R.REQUESTED
    response = su_client.post(reject_url, {"reason": "outside the window"}, follow=True)
    assert f"Reject return: {second.rma} is now Rejected." in texts(response)
    assert refreshed(second).decision_note == "outside the window"

    transit_url = reverse("admin:returns_returnrequest_in_transit", args=[first.pk])
    response = su_client.post(transit_url, {"tracking_number": "1Z999"}, follow=True)
    assert f"Mark in transit: {first.rma} is now In transit." in texts(response)
    assert refreshed(first).events.filter(kind="status", message__contains="1Z999").exists()


def test_returns_cannot_be_added_changed_or_deleted(su_client, setup, shipped_order):
    return_request = open_return(shipped_order, tee=1)

    assert su_client.get(reverse("admin:returns_returnrequest_add")).status_code == 403
    su_client.post(change_url(return_request), {"status": "closed"})
    assert refreshed(return_request).status == R.REQUESTED
    delete = reverse("admin:returns_returnrequest_delete", args=[return_request.pk])
    assert su_client.get(delete).status_code == 403


# -- receive scanner page ---------------------------------------------------------------------


def receive_page(client, return_request: ReturnRequest):
    return client.get(reverse(RECEIVE), {"rma": return_request.rma})


def idempotency_key(response) -> str:
    return re.search(
        r'name="idempotency_key" value="([0-9a-f]+)"', response.content.decode()
    ).group(1)


def post_receive(client, return_request, key: str, counts: dict, action="scan", scan=""):
    data = {"idempotency_key": key, "action": action, "scan": scan}
    data.update({f"qty_{line.pk}": qty for line, qty in counts.items()})
    return client.post(f"{reverse(RECEIVE)}?rma={return_request.rma}", data)


def counted(response, line) -> int:
    match = re.search(
        rf'name="qty_{line.pk}" id="id_qty_{line.pk}" value="(\d+)"', response.content.decode()
    )
    return int(match.group(1))


def feedback(response) -> str:
    html = response.content.decode()
    return re.search(r'id="scan-feedback"[^>]*>([^<]*)<', html).group(1).strip()


def test_receive_lookup_is_an_autofocused_scan_field(su_client, setup):
    response = su_client.get(reverse(RECEIVE))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Scan RMA or order id" in html
    assert re.search(r'<input[^>]*name="code"[^>]*autofocus', html)


def test_receive_by_rma_with_scans_by_sku_and_barcode(su_client, barcoded, shipped_order):
    return_request = authorized(shipped_order, tee=2, mug=1)
    tee = return_request.lines.get(sku__code="TEE")
    mug = return_request.lines.get(sku__code="MUG")

    found = su_client.get(reverse(RECEIVE), {"code": return_request.rma})
    assert found.status_code == 302
    assert found["Location"].endswith(f"?rma={return_request.rma}")

    page = receive_page(su_client, return_request)
    html = page.content.decode()
    assert "Scan SKU or barcode" in html and re.search(r'name="scan"[^>]*autofocus', html)
    assert f"Units go to quarantine <strong>{setup_code(barcoded)}</strong>" in html
    key = idempotency_key(page)

    step = post_receive(su_client, return_request, key, {tee: 0, mug: 0}, scan="tee")
    assert counted(step, tee) == 1 and feedback(step) == "TEE: 1 of 2"
    assert idempotency_key(step) == key
    # The same item by its barcode, as a GTIN-14 with a leading zero.
    step = post_receive(su_client, return_request, key, {tee: 1, mug: 0}, scan="0" + TEE_GTIN)
    assert counted(step, tee) == 2 and feedback(step) == "TEE: 2 of 2"
    step = post_receive(su_client, return_request, key, {tee: 2, mug: 0}, scan=TEE_GTIN)
    assert counted(step, tee) == 2 and feedback(step) == "All 2 of TEE are already counted."
    step = post_receive(su_client, return_request, key, {tee: 2, mug: 0}, scan="NOPE")
    assert feedback(step) == f"Unknown code &#x27;NOPE&#x27;: not on {return_request.rma}."
    step = post_receive(su_client, return_request, key, {tee: 2, mug: 0}, scan="MUG")
    assert counted(step, mug) == 1

    quarantine = barcoded["quarantine"]
    before = stock_available(sku=barcoded["tee"])
    done = post_receive(su_client, return_request, key, {tee: 2, mug: 1}, action="receive")

    assert done.status_code == 302 and done["Location"] == change_url(return_request)
    assert refreshed(return_request).status == R.RECEIVED
    assert on_hand("TEE", quarantine) == 2 and on_hand("MUG", quarantine) == 1
    assert stock_available(sku=barcoded["tee"]) == before  # quarantine is never sellable
    message = texts(su_client.get(done["Location"]))
    assert (
        f"Received 3 unit(s) of {return_request.rma} into quarantine returns: TEE x 2, MUG x 1. "
        "The return is now Received." in message
    )


def setup_code(setup) -> str:
    return setup["quarantine"].code


def test_receive_partial_count_then_the_rest(
    su_client, setup, shipped_order, django_capture_on_commit_callbacks
):
    return_request = authorized(shipped_order, tee=2, mug=1)
    tee = return_request.lines.get(sku__code="TEE")
    mug = return_request.lines.get(sku__code="MUG")

    # The refund tasks run after each receipt's commit, as the worker would.
    key = idempotency_key(receive_page(su_client, return_request))
    with django_capture_on_commit_callbacks(execute=True):
        post_receive(su_client, return_request, key, {tee: 1, mug: 0}, action="receive")
    assert refreshed(tee.return_request).lines.get(pk=tee.pk).quantity_received == 1
    assert refreshed(return_request).status == R.RECEIVED  # the rest is still expected
    assert [r.state for r in return_request.refunds.all()] == ["not_required"]

    page = receive_page(su_client, return_request)
    assert idempotency_key(page) != key  # a new page, a new receipt
    assert "(1 of 2 already in)" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        post_receive(su_client, return_request, idempotency_key(page), {tee: 1, mug: 1}, "receive")
    assert on_hand("TEE", setup["quarantine"]) == 2 and on_hand("MUG", setup["quarantine"]) == 1
    assert refreshed(return_request).status == R.REFUNDED
    assert [sum(rl.quantity for rl in r.lines.all()) for r in return_request.refunds.all()] == [
        1,
        2,
    ]


def test_approve_with_refund_terms_then_change_them(su_client, setup, shipped_order):
    waiting = open_return(shipped_order, tee=2)
    tee = waiting.lines.get()
    url = reverse("admin:returns_returnrequest_approve_terms", args=[waiting.pk])
    assert url in su_client.get(change_url(waiting)).content.decode()
    page = su_client.get(url).content.decode()
    assert f'name="amount_{tee.pk}"' in page and 'name="refund_shipping"' in page

    too_much = su_client.post(url, {f"amount_{tee.pk}": "25.01"}, follow=True)
    assert any("more than the 25.00 paid" in m for m in texts(too_much))
    assert refreshed(waiting).status == R.REQUESTED
    done = su_client.post(url, {f"amount_{tee.pk}": "20.00", "refund_shipping": "on"}, follow=True)
    assert f"Approve return: {waiting.rma} is now Authorized." in texts(done)
    after = refreshed(waiting)
    assert after.refund_shipping and after.lines.get().refund_amount == Decimal("20.00")

    terms = reverse("admin:returns_returnrequest_refund_terms", args=[waiting.pk])
    assert terms in su_client.get(change_url(waiting)).content.decode()
    su_client.post(terms, {f"amount_{tee.pk}": "18.00"}, follow=True)
    after = refreshed(waiting)
    assert not after.refund_shipping and after.lines.get().refund_amount == Decimal("18.00")
    svc.return_receive(return_request=after)
    assert after.refunds.get().amount == Decimal("18.00")


def test_stop_waiting_for_the_rest(su_client, setup, shipped_order):
    return_request = authorized(shipped_order, tee=2)
    tee = return_request.lines.get()
    svc.return_receive(return_request=return_request, lines={tee.pk: 1})
    url = reverse("admin:returns_returnrequest_stop_waiting", args=[return_request.pk])
    assert url in su_client.get(change_url(return_request)).content.decode()

    response = su_client.post(url, {"reason": "buyer kept one"}, follow=True)
    assert any("Stop waiting for the rest" in m for m in texts(response))
    line = refreshed(return_request).lines.get()
    assert (line.quantity_received, line.quantity_not_returned) == (1, 1)
    assert "not coming back" in su_client.get(change_url(return_request)).content.decode()


def test_receive_by_order_id(su_client, setup, shipped_order):
    return_request = authorized(shipped_order, tee=1)

    response = su_client.get(reverse(RECEIVE), {"code": shipped_order.external_id})

    assert response.status_code == 302
    assert response["Location"].endswith(f"?rma={return_request.rma}")


def test_receive_by_order_id_with_none_or_several_returns_says_so(su_client, setup, shipped_order):
    open_return(shipped_order, tee=1)  # not authorized: nothing to receive

    none = su_client.get(reverse(RECEIVE), {"code": shipped_order.external_id})
    assert none.status_code == 200
    assert f"Order {shipped_order.external_id} has no return to receive." in feedback(none)

    first = authorized(shipped_order, tee=1)
    second = authorized(shipped_order, tee=0, mug=1)
    several = su_client.get(reverse(RECEIVE), {"code": shipped_order.external_id})
    message = feedback(several)
    assert "has 2 returns to receive" in message
    assert first.rma in message and second.rma in message and "Scan the RMA instead" in message

    unknown = su_client.get(reverse(RECEIVE), {"code": "ZZZ"})
    assert feedback(unknown) == "No RMA or order &#x27;ZZZ&#x27;."


def test_receive_refuses_a_return_that_is_not_authorized(su_client, setup, shipped_order):
    waiting = open_return(shipped_order, tee=1)

    response = su_client.get(reverse(RECEIVE), {"code": waiting.rma})
    assert "only an authorized return can be received" in feedback(response)
    page = su_client.get(reverse(RECEIVE), {"rma": waiting.rma}, follow=True)
    assert any("only an authorized return can be received" in m for m in texts(page))


def test_receive_double_submit_applies_once(su_client, setup, shipped_order):
    return_request = authorized(shipped_order, tee=2)
    tee = return_request.lines.get()
    key = idempotency_key(receive_page(su_client, return_request))

    first = post_receive(su_client, return_request, key, {tee: 1}, action="receive")
    second = post_receive(su_client, return_request, key, {tee: 1}, action="receive")

    assert first.status_code == second.status_code == 302
    assert on_hand("TEE", setup["quarantine"]) == 1
    assert return_request.events.filter(kind="received").count() == 1
    messages = texts(su_client.get(second["Location"]))
    assert f"{return_request.rma}: this count was already received; nothing changed." in messages


def test_receive_double_submit_of_the_whole_parcel_applies_once(su_client, setup, shipped_order):
    return_request = authorized(shipped_order, tee=2)
    tee = return_request.lines.get()
    key = idempotency_key(receive_page(su_client, return_request))

    post_receive(su_client, return_request, key, {tee: 2}, action="receive")
    again = post_receive(su_client, return_request, key, {tee: 2}, action="receive")

    assert again.status_code == 302 and again["Location"] == change_url(return_request)
    assert on_hand("TEE", setup["quarantine"]) == 2


def test_receive_plus_minus_and_nothing_counted(su_client, setup, shipped_order):
    return_request = authorized(shipped_order, tee=2)
    tee = return_request.lines.get()
    key = idempotency_key(receive_page(su_client, return_request))

    plus = post_receive(su_client, return_request, key, {tee: 0}, action=f"plus:{tee.pk}")
    assert counted(plus, tee) == 1
    capped = post_receive(su_client, return_request, key, {tee: 2}, action=f"plus:{tee.pk}")
    assert counted(capped, tee) == 2
    minus = post_receive(su_client, return_request, key, {tee: 0}, action=f"minus:{tee.pk}")
    assert counted(minus, tee) == 0

    nothing = post_receive(su_client, return_request, key, {tee: 0}, action="receive")
    assert nothing.status_code == 200
    assert "Scan at least one unit before receiving." in nothing.content.decode()
    too_many = post_receive(su_client, return_request, key, {tee: 3}, action="receive")
    assert too_many.status_code == 200
    assert on_hand("TEE", setup["quarantine"]) == 0
    assert refreshed(return_request).status == R.AUTHORIZED


def test_receive_reports_a_service_refusal(su_client, setup, shipped_order):
    return_request = authorized(shipped_order, tee=1)
    tee = return_request.lines.get()
    key = idempotency_key(receive_page(su_client, return_request))
    setup["quarantine"].delete()

    response = post_receive(su_client, return_request, key, {tee: 1}, action="receive")

    assert response.status_code == 200
    assert "No quarantine warehouse is set up to receive returns." in texts(response)
    assert refreshed(return_request).status == R.AUTHORIZED


# -- inspect scanner page ---------------------------------------------------------------------


def received(order, **kwargs) -> ReturnRequest:
    return_request = authorized(order, **kwargs)
    svc.return_receive(return_request=return_request, actor="dock")
    return refreshed(return_request)


def inspect_page(client, return_request, **params):
    return client.get(reverse(INSPECT), {"rma": return_request.rma, **params})


def post_inspect(client, return_request, line, grade: str, waiting: int, **fields):
    prefix = f"line{line.pk}-"
    data = {
        "line": line.pk,
        prefix + "line": line.pk,
        prefix + "waiting": waiting,
        prefix + "quantity": fields.pop("quantity", 1),
        prefix + "grade": grade,
        prefix + "disposition": fields.pop("disposition", "write_off"),
        prefix + "reason": fields.pop("reason", ""),
        prefix + "restock_warehouse": fields.pop("restock_warehouse", ""),
    }
    return client.post(f"{reverse(INSPECT)}?rma={return_request.rma}", data)


def test_inspect_lookup_by_rma_and_order_id(su_client, setup, shipped_order):
    return_request = received(shipped_order, tee=1)

    by_rma = su_client.get(reverse(INSPECT), {"code": return_request.rma})
    by_order = su_client.get(reverse(INSPECT), {"code": shipped_order.external_id})

    assert by_rma["Location"].endswith(f"?rma={return_request.rma}")
    assert by_order["Location"].endswith(f"?rma={return_request.rma}")
    waiting = authorized(shipped_order, tee=1)
    refused = su_client.get(reverse(INSPECT), {"code": waiting.rma})
    assert "no received unit waits for inspection" in feedback(refused)


def test_inspect_page_preselects_the_orders_warehouse(su_client, setup, shipped_order):
    return_request = received(shipped_order, tee=2, mug=1)

    html = inspect_page(su_client, return_request).content.decode()

    assert html.count('class="returns-inspect') == 2
    assert f'<option value="{setup["nyc"].pk}" selected>' in html
    assert f'<option value="{setup["quarantine"].pk}"' not in html  # never restock quarantine
    for grade in ("Sellable", "Damaged", "Defective"):
        assert f">{grade}</button>" in html
    # Two lines wait: the keyboard starts on the SKU scan; scanning one puts it first.
    assert re.search(r'name="sku"[^>]*autofocus', html)
    mug = return_request.lines.get(sku__code="MUG")
    picked = inspect_page(su_client, return_request, sku="mug").content.decode()
    assert re.findall(r'id="inspect-line-(\d+)"', picked)[0] == str(mug.pk)
    assert re.search(r'value="sellable" class="returns-grade[^"]*" autofocus', picked)
    unknown = inspect_page(su_client, return_request, sku="NOPE")
    assert "Unknown code &#x27;NOPE&#x27;" in feedback(unknown)


def test_inspect_sellable_moves_stock_from_quarantine_to_sellable(su_client, setup, shipped_order):
    return_request = received(shipped_order, tee=2)
    tee = return_request.lines.get()
    sellable_before = stock_available(sku=setup["tee"])
    assert on_hand("TEE", setup["quarantine"]) == 2

    response = post_inspect(
        su_client, return_request, tee, "sellable", waiting=2, restock_warehouse=setup["nyc"].pk
    )

    assert response.status_code == 302
    assert response["Location"].endswith(f"?rma={return_request.rma}")  # one more unit waits
    assert on_hand("TEE", setup["quarantine"]) == 1
    assert stock_available(sku=setup["tee"]) == sellable_before + 1
    inspection = Inspection.objects.get()
    assert (inspection.grade, inspection.disposition) == ("sellable", "restock")
    assert inspection.restock_warehouse == setup["nyc"]
    assert inspection.inspected_by is not None
    assert f"{return_request.rma}: 1 x TEE sellable, restocked (sellable) into nyc." in texts(
        su_client.get(response["Location"])
    )


def test_inspect_damaged_needs_a_reason_then_writes_off(su_client, setup, shipped_order):
    return_request = received(shipped_order, tee=1)
    tee = return_request.lines.get()

    refused = post_inspect(su_client, return_request, tee, "damaged", waiting=1)

    assert refused.status_code == 200
    assert "Say why the unit is damaged or defective." in refused.content.decode()
    assert not Inspection.objects.exists()
    assert on_hand("TEE", setup["quarantine"]) == 1

    done = post_inspect(
        su_client,
        return_request,
        tee,
        "defective",
        waiting=1,
        reason="zip broken",
        disposition="return_to_supplier",
    )

    assert done.status_code == 302 and done["Location"] == change_url(return_request)
    assert on_hand("TEE", setup["quarantine"]) == 0
    inspection = Inspection.objects.get()
    assert (inspection.grade, inspection.disposition) == ("defective", "return_to_supplier")
    assert inspection.reason == "zip broken"
    messages = texts(su_client.get(done["Location"]))
    assert any("Every received unit of" in m for m in messages)
    assert refreshed(return_request).status in (R.INSPECTED, R.CLOSED)


def test_inspect_without_a_grade_and_a_stale_double_submit_change_nothing(
    su_client, setup, shipped_order
):
    return_request = received(shipped_order, tee=2)
    tee = return_request.lines.get()

    no_grade = post_inspect(su_client, return_request, tee, "", waiting=2)
    assert "Choose a grade: Sellable, Damaged or Defective." in no_grade.content.decode()

    post_inspect(su_client, return_request, tee, "sellable", waiting=2)
    stale = post_inspect(su_client, return_request, tee, "sellable", waiting=2)

    assert stale.status_code == 200
    assert "This line changed since the page was shown" in stale.content.decode()
    assert Inspection.objects.count() == 1
    assert on_hand("TEE", setup["quarantine"]) == 1


# -- permissions --------------------------------------------------------------------------------


def test_warehouse_may_receive_and_inspect_but_not_decide(client, setup, shipped_order):
    waiting = open_return(shipped_order, tee=1)
    approved = authorized(shipped_order, tee=1)
    client = role_client(client, "Warehouse")

    assert client.get(reverse(RECEIVE)).status_code == 200
    assert client.get(reverse(INSPECT)).status_code == 200
    assert receive_page(client, approved).status_code == 200
    approve = reverse("admin:returns_returnrequest_approve", args=[waiting.pk])
    assert client.post(approve).status_code == 403
    reject = reverse("admin:returns_returnrequest_reject", args=[waiting.pk])
    assert client.get(reject).status_code == 403
    assert refreshed(waiting).status == R.REQUESTED
    html = client.get(change_url(approved)).content.decode()
    assert f"receive/?rma={approved.rma}" in html and ">Approve<" not in html


def test_customer_service_may_decide_but_not_receive_or_inspect(client, setup, shipped_order):
    waiting = open_return(shipped_order, tee=1)
    client = role_client(client, "Customer service")

    assert client.get(reverse(RECEIVE)).status_code == 403
    assert client.get(reverse(INSPECT)).status_code == 403
    html = queue(client).content.decode()
    assert "approve_returns" in html and "Receive parcels" not in html
    response = client.post(
        reverse("admin:returns_returnrequest_approve", args=[waiting.pk]), follow=True
    )
    assert response.status_code == 200
    assert refreshed(waiting).status == R.AUTHORIZED


# -- rules, alerts, figures ---------------------------------------------------------------------


def test_rule_admin_edits_priority_and_active_in_the_list(su_client, setup):
    rule = AutoDecisionRule.objects.create(name="cheap", priority=5)
    url = reverse("admin:returns_autodecisionrule_changelist")
    html = su_client.get(url).content.decode()
    assert 'name="form-0-priority"' in html and 'name="form-0-is_active"' in html

    su_client.post(
        url,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": rule.pk,
            "form-0-priority": "2",
            "_save": "Save",
        },
    )

    rule.refresh_from_db()
    assert (rule.priority, rule.is_active) == (2, False)


def test_alert_and_late_answer_lists_are_read_only(su_client, setup, shipped_order, settings):
    return_request = open_return(shipped_order, tee=1, hours_ago=40)
    svc.return_answer_alerts_raise()
    LateAnswerDaily.objects.create(
        channel=setup["shop"], day=timezone.now().date(), answered=4, answered_late=1
    )
    alert = ReturnAlert.objects.get()

    alerts = su_client.get(reverse("admin:returns_returnalert_changelist"))
    assert return_request.rma in alerts.content.decode()
    figures = su_client.get(reverse("admin:returns_lateanswerdaily_changelist"))
    assert "25.0%" in figures.content.decode()
    for name in ("returnalert", "lateanswerdaily"):
        assert su_client.get(reverse(f"admin:returns_{name}_add")).status_code == 403
    delete = reverse("admin:returns_returnalert_delete", args=[alert.pk])
    assert su_client.get(delete).status_code == 403


def test_send_a_failed_refund_again(su_client, setup, shipped_order):
    return_request = authorized(shipped_order, tee=1)
    svc.return_receive(return_request=return_request)
    refund = Refund.objects.get(return_request=return_request)
    url = reverse("admin:returns_returnrequest_retry_refunds", args=[return_request.pk])
    assert url not in su_client.get(change_url(return_request)).content.decode()

    svc.refund_result(refund=refund, ok=False, error="channel down for good", final=True)
    page = su_client.get(change_url(return_request)).content.decode()
    assert url in page and "channel down for good" in page
    assert su_client.get(url).status_code == 405  # a change: POST only

    response = su_client.post(url, follow=True)
    assert any("1 failed refund(s) queued to send again" in m for m in texts(response))
    refund.refresh_from_db()
    assert refund.state != Refund.State.FAILED
    again = su_client.post(url, follow=True)
    assert any("has no failed refund to send again" in m for m in texts(again))
