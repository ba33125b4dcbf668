"""The channels admin through the Django test client, as a superuser, against the simulators.

Each action is checked by what staff see (the messages) and by what the service recorded
(sync log, orders, pushes); credentials are checked never to reach the HTML in full.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from channels_app.models import (
    Channel,
    DriftRecord,
    Listing,
    OrderImportError,
    PendingPush,
    PushLog,
    SyncLog,
    WebhookEvent,
)
from channels_app.services.sync import listing_push_enqueue, pushes_dispatch
from oms.models import Order

pytestmark = pytest.mark.django_db
SECRET = "shpat_TOPSECRET_value_9876"


def changelist(model: type) -> str:
    return reverse(f"admin:channels_app_{model._meta.model_name}_changelist")


def change(obj: Any) -> str:
    return reverse(f"admin:channels_app_{obj._meta.model_name}_change", args=[obj.pk])


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(client, model: type, action: str, objects: list) -> Any:
    return client.post(
        changelist(model),
        {"action": action, "_selected_action": [obj.pk for obj in objects]},
        follow=True,
    )


def form_data(response) -> dict[str, Any]:
    """The change form's current values as POST data, inline formsets included."""
    data: dict[str, Any] = {}

    def add(form) -> None:
        for name in form.fields:
            value = form[name].value()
            key = form.add_prefix(name)
            if isinstance(value, bool):
                if value:
                    data[key] = "on"
            elif value is not None:
                data[key] = value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.forms:
            add(form)
    return data


@pytest.fixture
def records(world):
    """One row of every kind the integration records, for the read-only pages."""
    shopify, listing = world.channels["shopify"], world.listings["shopify"]
    OrderImportError.objects.create(
        channel=shopify, external_id="1001", reason="line item 1 has no SKU", raw_payload={"id": 1}
    )
    WebhookEvent.objects.create(
        channel=shopify, event_id="evt-1", topic="orders/create", payload={"id": 5}
    )
    SyncLog.objects.create(channel=shopify, kind="orders", started_at=timezone.now(), items=3)
    listing_push_enqueue(listing=listing, quantity=4)
    DriftRecord.objects.create(listing=listing, shown_quantity=7, expected_quantity=4)
    return world


def test_every_changelist_and_change_page_renders(admin_client, records):
    world = records
    channel, listing = world.channels["amazon"], world.listings["amazon"]
    pages = {
        Channel: ["q=amazon", "kind__exact=amazon", "health=failing", "is_enabled__exact=1"],
        Listing: ["q=MUG", f"channel__saleschannel_ptr__exact={channel.pk}", "push=pending"],
        PendingPush: ["state__exact=pending", "q=MUG"],
        PushLog: ["state__exact=pending", f"listing__id__exact={listing.pk}"],
        OrderImportError: ["state=open", "state=closed", "q=1001"],
        SyncLog: ["ok__exact=1", "kind__exact=orders"],
        WebhookEvent: ["processed=open", "q=evt-1", "q=orders/create"],
        DriftRecord: ["state=open", f"listing__channel__saleschannel_ptr__exact={channel.pk}"],
    }
    for model, queries in pages.items():
        for query in ["", *queries]:
            response = admin_client.get(f"{changelist(model)}?{query}")
            assert response.status_code == 200, (model, query)
        obj = model.objects.first()
        assert obj is not None, model
        assert admin_client.get(change(obj)).status_code == 200, model
    assert admin_client.get(reverse("admin:channels_app_channel_add")).status_code == 200
    assert admin_client.get(reverse("admin:channels_app_listing_add")).status_code == 200

    import_error = admin_client.get(change(OrderImportError.objects.get()))
    assert "line item 1 has no SKU" in import_error.content.decode()
    assert "&quot;id&quot;: 1" in import_error.content.decode()  # pretty-printed payload


def test_channel_changelist_shows_health_and_backlog(admin_client, records):
    html = admin_client.get(changelist(Channel)).content.decode()
    assert "never synced" in html
    assert "1 waiting" in html  # the pending push of the Shopify listing
    assert "1 open" in html  # its import error


def test_test_connection_action_reports_the_channels_answer(admin_client, world):
    channel = world.channels["shopify"]
    response = run_action(admin_client, Channel, "test_connection", [channel])
    assert response.status_code == 200
    [message] = texts(response)
    assert message.startswith("shopify: connection OK.") and "Shopify store" in message
    log = SyncLog.objects.get(channel=channel, kind=SyncLog.Kind.CONNECTION)
    assert log.ok
    channel.refresh_from_db()
    assert channel.last_success_at is not None
    html = admin_client.get(f"{changelist(Channel)}?health=ok").content.decode()
    assert 'channels-tone-ok">ok</span>' in html and "shopify" in html


def test_test_connection_button_on_the_channel_page(admin_client, world):
    channel = world.channels["ebay"]
    url = reverse("admin:channels_app_channel_test_connection", args=[channel.pk])
    assert admin_client.get(url).status_code == 405  # a side effect: POST only
    response = admin_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == change(channel)
    assert any("ebay-us: connection OK." in m for m in texts(response))
    assert "Test connection" in response.content.decode()


def test_test_connection_failure_is_an_error_message_and_logged(admin_client, world):
    shopify, walmart = world.channels["shopify"], world.channels["walmart"]
    shopify.set_credentials({"access_token": "wrong-token"})
    shopify.save()
    world.sims["walmart"].stop()
    response = run_action(admin_client, Channel, "test_connection", [shopify, walmart])
    errors = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert len(errors) == 2
    assert any(e.startswith("shopify: connection failed:") for e in errors)
    assert any(e.startswith("walmart-us: connection failed:") for e in errors)
    for channel in (shopify, walmart):
        log = SyncLog.objects.get(channel=channel, kind=SyncLog.Kind.CONNECTION)
        assert not log.ok and log.message
        channel.refresh_from_db()
        assert channel.last_error and channel.last_error_at
    html = admin_client.get(f"{changelist(Channel)}?health=failing").content.decode()
    assert "failing" in html and "walmart-us" in html and "amazon-us" not in html


def test_credentials_are_masked_and_a_new_value_is_stored_encrypted(admin_client, world):
    channel = world.channels["shopify"]
    channel.set_credentials({"access_token": SECRET, "webhook_secret": "demo-webhook-secret"})
    channel.save()
    page = admin_client.get(change(channel))
    html = page.content.decode()
    assert SECRET not in html and "demo-webhook-secret" not in html
    assert "9876" in html and "access_token" in html  # the masked form: name and last four

    new_token = "shpat_brand_NEW_token_1234"
    data = form_data(page)
    data["new_credentials"] = f'{{"access_token": "{new_token}"}}'
    response = admin_client.post(change(channel), data, follow=True)
    assert response.status_code == 200
    assert not response.context.get("errors"), response.context.get("errors")
    channel.refresh_from_db()
    assert new_token not in channel.credentials_encrypted
    assert channel.get_credentials() == {
        "access_token": new_token,
        "webhook_secret": "demo-webhook-secret",
    }
    html = admin_client.get(change(channel)).content.decode()
    assert new_token not in html and "1234" in html

    # Blank keeps the stored values.
    data["new_credentials"] = ""
    admin_client.post(change(channel), data)
    channel.refresh_from_db()
    assert channel.get_credentials()["access_token"] == new_token


def test_invalid_credentials_are_refused_without_echoing_them(admin_client, world):
    channel = world.channels["shopify"]
    data = form_data(admin_client.get(change(channel)))
    data["new_credentials"] = '{"access_token": "shpat_typo_SECRET", '
    response = admin_client.post(change(channel), data)
    assert response.status_code == 200  # the form again, with the error
    html = response.content.decode()
    assert "Not valid JSON" in html and "shpat_typo_SECRET" not in html
    data["new_credentials"] = '{"access_token": "••••••••ator"}'
    response = admin_client.post(change(channel), data)
    assert "masked value" in response.content.decode()
    channel.refresh_from_db()
    assert channel.get_credentials()["access_token"] == "shpat_simulator"


def test_routing_rules_inline_saves_on_the_channel_page(admin_client, world):
    channel = world.channels["ebay"]
    data = form_data(admin_client.get(change(channel)))
    prefix = next(k for k in data if k.endswith("-TOTAL_FORMS")).removesuffix("-TOTAL_FORMS")
    data[f"{prefix}-0-priority"] = 3
    response = admin_client.post(change(channel), data)
    assert response.status_code == 302
    assert channel.routing.get().priority == 3


def test_import_orders_now_imports_from_the_simulator(admin_client, world):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    sim.create_order([("MUG", 1)])
    sim.create_order([("MUG", 2)])
    sim.create_order([("MUG", 1)], malformed=True)
    response = run_action(admin_client, Channel, "import_orders_now", [channel])
    [message] = texts(response)
    assert "shopify: 3 order(s) read: 2 new" in message and "1 failed" in message
    assert "See the import errors" in message
    assert Order.objects.filter(channel=channel).count() == 2
    assert SyncLog.objects.filter(channel=channel, kind="orders", ok=True).exists()

    button = reverse("admin:channels_app_channel_import_orders", args=[channel.pk])
    again = admin_client.post(button, follow=True)
    assert any("0 new" in m for m in texts(again))


def test_import_orders_now_reports_a_connector_error(admin_client, world):
    channel = world.channels["ebay"]
    world.sims["ebay"].stop()
    response = run_action(admin_client, Channel, "import_orders_now", [channel])
    [error] = [m for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert str(error).startswith("ebay-us: import stopped:")
    assert SyncLog.objects.filter(channel=channel, kind="orders", ok=False).exists()


def test_retry_import_action_imports_a_fixed_payload_and_reports_each_row(admin_client, world):
    sim, channel = world.sims["shopify"], world.channels["shopify"]
    good_json = sim.create_order([("MUG", 1)])
    fixed = OrderImportError.objects.create(
        channel=channel,
        external_id=str(good_json["id"]),
        reason="unknown SKU (since listed)",
        raw_payload=good_json,
    )
    broken = OrderImportError.objects.create(
        channel=channel, external_id="999", reason="no line items", raw_payload={"id": 999}
    )
    response = run_action(admin_client, OrderImportError, "retry_import", [fixed, broken])
    by_level = {m.level_tag: str(m) for m in get_messages(response.wsgi_request)}
    assert f"{good_json['id']}: imported (created) as <a" in by_level["success"]
    assert "999: still failing after 2 attempt(s)" in by_level["error"]
    fixed.refresh_from_db()
    broken.refresh_from_db()
    assert fixed.resolved_at is not None and broken.resolved_at is None
    assert Order.objects.filter(channel=channel, external_id=str(good_json["id"])).exists()
    page = admin_client.get(change(fixed)).content.decode()
    assert "resolved" in page and "Retry import" not in page


def test_retry_import_button_on_the_error_page(admin_client, world):
    channel = world.channels["shopify"]
    error = OrderImportError.objects.create(
        channel=channel, external_id="42", reason="bad", raw_payload={"id": 42}
    )
    assert "Retry import" in admin_client.get(change(error)).content.decode()
    url = reverse("admin:channels_app_orderimporterror_retry", args=[error.pk])
    response = admin_client.post(url, follow=True)
    assert any("42: still failing" in m for m in texts(response))


def _failed_push(world, kind: str = "ebay") -> PendingPush:
    """A push the channel refused until it gave up: the simulator answered 503 each time."""
    listing, sim = world.listings[kind], world.sims[kind]
    push = listing_push_enqueue(listing=listing, quantity=6)
    sim.faults.error_next = 1000
    for _ in range(10):
        pushes_dispatch(channel=listing.channel)
        PendingPush.objects.filter(pk=push.pk).update(next_attempt_at=timezone.now())
        push.refresh_from_db()
        if push.state == PendingPush.State.FAILED:
            break
    assert push.state == PendingPush.State.FAILED
    sim.faults.error_next = 0
    return push


def test_retry_failed_push_action_sends_it(admin_client, world, django_capture_on_commit_callbacks):
    push = _failed_push(world)
    html = admin_client.get(f"{changelist(PendingPush)}?state__exact=failed").content.decode()
    assert "failed" in html and "MUG" in html
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, PendingPush, "retry_pushes", [push])
    assert any("due again, quantity 6" in m for m in texts(response))
    assert not PendingPush.objects.filter(pk=push.pk).exists()  # sent and settled
    assert world.sims["ebay"].shown_quantity("MUG") == 6
    assert PushLog.objects.filter(listing=push.listing, state="sent", quantity=6).exists()


def test_retry_skips_pushes_that_have_not_failed(admin_client, world):
    push = listing_push_enqueue(listing=world.listings["walmart"], quantity=2)
    response = run_action(admin_client, PendingPush, "retry_pushes", [push])
    assert any("have not failed" in m for m in texts(response))
    push.refresh_from_db()
    assert push.state == PendingPush.State.PENDING


def test_push_quantity_now_pushes_the_computed_quantity(
    admin_client, world, django_capture_on_commit_callbacks
):
    channel = world.channels["amazon"]
    channel.max_shown = 3
    channel.save()
    listings = [world.listings["amazon"], world.listings["shopify"]]
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, Listing, "push_quantity_now", listings)
    queued = "2 listing(s) queued to push now on amazon-us, shopify"
    assert any(queued in m for m in texts(response))
    assert world.sims["amazon"].shown_quantity("MUG") == 3
    assert world.sims["shopify"].shown_quantity("MUG") == 10
    for listing in listings:
        listing.refresh_from_db()
        assert listing.last_pushed_at is not None


def test_changing_a_listing_override_pushes_its_new_quantity(
    admin_client, world, django_capture_on_commit_callbacks
):
    listing = world.listings["walmart"]
    data = form_data(admin_client.get(change(listing)))
    data["max_shown"] = 4
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(change(listing), data)
    assert response.status_code == 302
    assert world.sims["walmart"].shown_quantity("MUG") == 4


def test_explain_page_shows_every_rule(admin_client, world):
    listing = world.listings["ebay"]
    channel = listing.channel
    channel.safety_buffer = 2
    channel.percent_shown = 50
    channel.save()
    Listing.objects.filter(pk=listing.pk).update(max_shown=3)
    changelist_html = admin_client.get(changelist(Listing)).content.decode()
    url = reverse("admin:channels_app_listing_explain", args=[listing.pk])
    assert url in changelist_html
    assert url in admin_client.get(change(listing)).content.decode()

    html = admin_client.get(url).content.decode()
    assert "10 available" in html and "nyc" in html
    for rule, value, note in [
        ("safety buffer", 8, "-2"),
        ("percent shown", 4, "50% rounded down"),
        ("maximum shown", 3, "at most 3"),
    ]:
        assert f"<td>{rule}</td><td>{value}</td><td>{note}</td>" in html
    assert "= 3 to show on ebay-us" in html


def test_channel_changelist_query_count_is_bounded(
    admin_client, world, django_assert_max_num_queries
):
    for n in range(30):
        channel = Channel.objects.create(code=f"extra-{n}", kind="shopify")
        listing = Listing.objects.create(channel=channel, sku=world.sku, seller_sku=f"S{n}")
        listing_push_enqueue(listing=listing, quantity=n + 1)
        OrderImportError.objects.create(channel=channel, external_id=str(n), reason="x")
    # Session, user, count, page: the backlog columns are subqueries of the page query.
    with django_assert_max_num_queries(5):
        response = admin_client.get(changelist(Channel))
    assert response.status_code == 200 and "extra-29" in response.content.decode()


def test_listing_changelist_query_count_is_bounded(
    admin_client, world, django_assert_max_num_queries
):
    for n in range(60):
        channel = world.channels[["amazon", "shopify", "ebay", "walmart"][n % 4]]
        listing = Listing.objects.create(channel=channel, sku=world.sku, seller_sku=f"L{n:02}")
        listing_push_enqueue(listing=listing, quantity=n + 1)
    # Session, user, count, page, the channel filter's choices.
    with django_assert_max_num_queries(6):
        response = admin_client.get(changelist(Listing))
    assert response.status_code == 200 and "L59" in response.content.decode()
    for model in (PendingPush, PushLog):
        with django_assert_max_num_queries(8):
            assert admin_client.get(changelist(model)).status_code == 200
