"""Amazon simulator responses validated against Amazon's published models (jsonschema).

The Swagger 2.0 models in ``channels_app/simulators/specs/amazon/`` are loaded as JSON
Schema (draft 4) resources so ``#/definitions/...`` references resolve. Objects are
validated *closed* (no properties the model does not declare), so a misspelt field fails
as surely as a missing required one.
"""

from __future__ import annotations

import copy
import csv
import functools
import gzip
import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator, Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from channels_app.connectors.amazon import AmazonConnector
from channels_app.connectors.base import ChannelConfig, InventoryUpdate
from channels_app.simulators.amazon import (
    MARKETPLACE_ID,
    RETURNS_COLUMNS,
    SPECS_DIR,
    AmazonSimulator,
)

from .conftest import FAST_RETRY

ORDERS = "orders_2026-01-01.json"
ORDERS_V0 = "ordersV0.json"
LISTINGS = "listingsItems_2021-08-01.json"
FEEDS = "feeds_2021-06-30.json"
REPORTS = "reports_2021-06-30.json"
FBA = "fbaInventory.json"
ALL_ORDER_DATA = "BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,PACKAGES,CANCELLATION"

_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
FORMATS = FormatChecker()


@FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or _DATE_TIME.fullmatch(value) is not None


@functools.cache
def load(name: str) -> dict[str, Any]:
    return json.loads((SPECS_DIR / name).read_text())


def _closed(schema: Any) -> Any:
    """A copy of ``schema`` whose object schemas refuse undeclared properties."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in ("properties", "definitions"):
            result[key] = {name: _closed(sub) for name, sub in value.items()}
        elif key in ("items", "allOf", "anyOf", "oneOf", "additionalProperties"):
            result[key] = _closed(value)
        else:
            result[key] = value
    combined = any(key in schema for key in ("allOf", "anyOf", "oneOf"))
    if "properties" in schema and "additionalProperties" not in schema and not combined:
        result["additionalProperties"] = False
    return result


@functools.cache
def validator(spec: str, definition: str) -> Draft4Validator:
    uri = f"urn:amazon-spec:{spec}"
    contents = _closed(load(spec))
    registry = Registry().with_resource(uri, Resource(contents, specification=DRAFT4))
    return Draft4Validator(
        {"$ref": f"{uri}#/definitions/{definition}"}, registry=registry, format_checker=FORMATS
    )


def assert_valid(spec: str, definition: str, instance: Any) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(spec, definition).iter_errors(instance)
    ]
    assert not errors, f"{definition} ({spec}):\n" + "\n".join(errors[:10])


@pytest.fixture
def sim() -> Iterator[AmazonSimulator]:
    simulator = AmazonSimulator(seed=5)
    simulator.start()
    simulator.set_listing(seller_sku="MUG-1", quantity=40, price="12.50")
    simulator.configure_listing(seller_sku="SFP-1", quantity=40, price="30.00", prime=True)
    simulator.configure_listing(
        seller_sku="FBA-1", quantity=20, fulfilled_by_amazon=True, inbound=5, unfulfillable=1
    )
    yield simulator
    simulator.stop()


@pytest.fixture
def api(sim: AmazonSimulator) -> Iterator[httpx.Client]:
    token = httpx.post(
        f"{sim.base_url}/auth/o2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "Atzr|spec-test",
            "client_id": "amzn1.application-oa2-client.spec",
            "client_secret": "secret",
        },
    ).json()["access_token"]
    with httpx.Client(base_url=sim.base_url, headers={"x-amz-access-token": token}) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["x-amzn-RequestId"]
    assert response.headers["x-amzn-RateLimit-Limit"]
    return response.json() if response.content else None


def shipped_and_cancelled(sim: AmazonSimulator, api: httpx.Client) -> tuple[str, str]:
    shipped = sim.create_order([("MUG-1", 2), ("SFP-1", 1)])
    item = shipped["orderItems"][0]
    response = api.post(
        f"/orders/v0/orders/{shipped['orderId']}/shipmentConfirmation",
        json={
            "marketplaceId": MARKETPLACE_ID,
            "packageDetail": {
                "packageReferenceId": "1",
                "carrierCode": "UPS",
                "trackingNumber": "1Z999AA10123456784",
                "shipDate": "2025-01-02T10:00:00Z",
                "orderItems": [{"orderItemId": item["orderItemId"], "quantity": 2}],
            },
        },
    )
    assert response.status_code == 204 and response.content == b""
    cancelled = sim.create_order([("MUG-1", 1)])
    sim.cancel_order(cancelled["orderId"])
    return shipped["orderId"], cancelled["orderId"]


def test_lwa_token_response(sim: AmazonSimulator) -> None:
    response = httpx.post(
        f"{sim.base_url}/auth/o2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "Atzr|abc",
            "client_id": "amzn1.application-oa2-client.x",
            "client_secret": "s",
        },
    )

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("Atza|") and len(body["access_token"]) <= 2048
    assert body["refresh_token"] == "Atzr|abc"


def test_search_orders_pages_validate(sim: AmazonSimulator, api: httpx.Client) -> None:
    sim.seed_orders(5, skus=["MUG-1", "SFP-1", "FBA-1"])
    shipped_and_cancelled(sim, api)
    params = {
        "lastUpdatedAfter": "2020-01-01T00:00:00Z",
        "includedData": ALL_ORDER_DATA,
        "maxResultsPerPage": 4,
    }
    pages = [ok(api.get("/orders/2026-01-01/orders", params=params))]
    while "pagination" in pages[-1]:
        token = pages[-1]["pagination"]["nextToken"]
        pages.append(ok(api.get("/orders/2026-01-01/orders", params={"paginationToken": token})))

    assert [len(page["orders"]) for page in pages] == [4, 3]
    for page in pages:
        assert_valid(ORDERS, "SearchOrdersResponse", page)
        assert "lastUpdatedBefore" in page
    orders = [order for page in pages for order in page["orders"]]
    assert {"packages", "buyer", "recipient", "proceeds"} <= set(orders[0])
    assert any(o["orderItems"][0].get("cancellation") for o in orders)
    bare = ok(api.get("/orders/2026-01-01/orders", params={"createdAfter": "2020-01-01T00:00Z"}))
    assert_valid(ORDERS, "SearchOrdersResponse", bare)
    assert not {"buyer", "recipient", "proceeds", "fulfillment"} & set(bare["orders"][0])


def test_get_order_validates(sim: AmazonSimulator, api: httpx.Client) -> None:
    shipped, cancelled = shipped_and_cancelled(sim, api)
    sim.deliver_order(shipped)

    for order_id in (shipped, cancelled):
        body = ok(
            api.get(
                f"/orders/2026-01-01/orders/{order_id}", params={"includedData": ALL_ORDER_DATA}
            )
        )
        assert_valid(ORDERS, "GetOrderResponse", body)
    assert body["order"]["fulfillment"]["fulfillmentStatus"] == "CANCELLED"


def test_orders_v0_validate(sim: AmazonSimulator, api: httpx.Client) -> None:
    shipped, _ = shipped_and_cancelled(sim, api)
    listing = ok(
        api.get(
            "/orders/v0/orders",
            params={"CreatedAfter": "2020-01-01T00:00:00Z", "MarketplaceIds": MARKETPLACE_ID},
        )
    )
    assert_valid(ORDERS_V0, "GetOrdersResponse", listing)
    statuses = {order["OrderStatus"] for order in listing["payload"]["Orders"]}
    assert statuses == {"PartiallyShipped", "Canceled"}

    assert_valid(ORDERS_V0, "GetOrderResponse", ok(api.get(f"/orders/v0/orders/{shipped}")))
    items = ok(api.get(f"/orders/v0/orders/{shipped}/orderItems"))
    assert_valid(ORDERS_V0, "GetOrderItemsResponse", items)
    first = items["payload"]["OrderItems"][0]
    assert first["ItemPrice"]["Amount"] == "25.00"  # v0 prices are line totals


def test_listings_item_search_and_patch_validate(sim: AmazonSimulator, api: httpx.Client) -> None:
    everything = "summaries,attributes,issues,offers,fulfillmentAvailability,productTypes"
    path = f"/listings/2021-08-01/items/{sim.seller_id}"
    item = ok(
        api.get(
            f"{path}/MUG-1", params={"marketplaceIds": MARKETPLACE_ID, "includedData": everything}
        )
    )
    assert_valid(LISTINGS, "Item", item)
    assert item["fulfillmentAvailability"] == [
        {"fulfillmentChannelCode": "DEFAULT", "quantity": 40}
    ]

    search = ok(api.get(path, params={"marketplaceIds": MARKETPLACE_ID, "pageSize": 2}))
    assert_valid(LISTINGS, "ItemSearchResults", search)
    assert search["numberOfResults"] == 3 and "nextToken" in search["pagination"]

    patch = {
        "productType": "PRODUCT",
        "patches": [
            {
                "op": "merge",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 9}],
            }
        ],
    }
    accepted = ok(api.patch(f"{path}/MUG-1", params={"marketplaceIds": MARKETPLACE_ID}, json=patch))
    assert_valid(LISTINGS, "ListingsItemSubmissionResponse", accepted)
    assert accepted["status"] == "ACCEPTED" and sim.shown_quantity("MUG-1") == 9
    assert_valid(LISTINGS, "ListingsItemPatchRequest", patch)

    refused = ok(api.patch(f"{path}/FBA-1", params={"marketplaceIds": MARKETPLACE_ID}, json=patch))
    assert_valid(LISTINGS, "ListingsItemSubmissionResponse", refused)
    assert refused["status"] == "INVALID" and refused["issues"][0]["severity"] == "ERROR"


def test_feed_flow_validates(sim: AmazonSimulator, api: httpx.Client) -> None:
    skus = [f"BULK-{n}" for n in range(25)]
    for sku in skus:
        sim.set_listing(seller_sku=sku, quantity=1)
    connector = AmazonConnector(
        ChannelConfig(
            kind="amazon",
            base_url=sim.base_url,
            credentials={
                "refresh_token": f"Atzr|spec-{uuid.uuid4().hex}",
                "lwa_app_id": "amzn1.application-oa2-client.spec",
                "lwa_client_secret": "secret",
            },
            extra={**FAST_RETRY, "seller_id": sim.seller_id, "poll_interval": 0.001},
        )
    )
    connector.push_inventory([InventoryUpdate(seller_sku=sku, quantity=5) for sku in skus])
    connector.close()
    (submitted,) = sim.feeds.values()
    uploaded = json.loads(sim.documents[submitted["_input"]]["content"])
    feed_schema = Draft7Validator(load("listings-feed-schema-v2.json"))
    assert not list(feed_schema.iter_errors(uploaded))  # the connector's own document

    created = ok(
        api.post("/feeds/2021-06-30/documents", json={"contentType": "application/json"}), 201
    )
    assert_valid(FEEDS, "CreateFeedDocumentResponse", created)
    upload = httpx.put(created["url"], content=json.dumps(uploaded).encode())
    assert upload.status_code == 200
    feed_request = {
        "feedType": "JSON_LISTINGS_FEED",
        "marketplaceIds": [MARKETPLACE_ID],
        "inputFeedDocumentId": created["feedDocumentId"],
    }
    assert_valid(FEEDS, "CreateFeedSpecification", feed_request)
    feed_id = ok(api.post("/feeds/2021-06-30/feeds", json=feed_request), 202)["feedId"]
    statuses = []
    for _ in range(3):
        feed = ok(api.get(f"/feeds/2021-06-30/feeds/{feed_id}"))
        assert_valid(FEEDS, "Feed", feed)
        statuses.append(feed["processingStatus"])
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "DONE"]

    document = ok(api.get(f"/feeds/2021-06-30/documents/{feed['resultFeedDocumentId']}"))
    assert_valid(FEEDS, "FeedDocument", document)
    assert document["compressionAlgorithm"] == "GZIP"
    report = json.loads(gzip.decompress(httpx.get(document["url"]).content))
    report_schema = Draft7Validator(load("listings-feed-processing-report-schema-v2.json"))
    assert not list(report_schema.iter_errors(report))
    assert report["summary"]["messagesAccepted"] == 25


def test_returns_report_flow_validates(sim: AmazonSimulator, api: httpx.Client) -> None:
    shipped, _ = shipped_and_cancelled(sim, api)
    sim.create_return(order_id=shipped, seller_sku="MUG-1")
    request = {
        "reportType": "GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE",
        "marketplaceIds": [MARKETPLACE_ID],
        "dataStartTime": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
    }
    assert_valid(REPORTS, "CreateReportSpecification", request)
    created = ok(api.post("/reports/2021-06-30/reports", json=request), 202)
    assert_valid(REPORTS, "CreateReportResponse", created)
    statuses = []
    for _ in range(3):
        report = ok(api.get(f"/reports/2021-06-30/reports/{created['reportId']}"))
        assert_valid(REPORTS, "Report", report)
        statuses.append(report["processingStatus"])
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "DONE"]

    document = ok(api.get(f"/reports/2021-06-30/documents/{report['reportDocumentId']}"))
    assert_valid(REPORTS, "ReportDocument", document)
    text = gzip.decompress(httpx.get(document["url"]).content).decode()
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    assert tuple(rows[0]) == RETURNS_COLUMNS and rows[0]["Order ID"] == shipped


def test_fba_inventory_summaries_validate(sim: AmazonSimulator, api: httpx.Client) -> None:
    sim.configure_listing(seller_sku="FBA-2", quantity=2, fulfilled_by_amazon=True)
    sim.fba_page_size = 1
    params = {
        "granularityType": "Marketplace",
        "granularityId": MARKETPLACE_ID,
        "marketplaceIds": MARKETPLACE_ID,
        "details": "true",
    }
    first = ok(api.get("/fba/inventory/v1/summaries", params=params))
    second = ok(
        api.get(
            "/fba/inventory/v1/summaries",
            params={**params, "nextToken": first["pagination"]["nextToken"], "details": "false"},
        )
    )

    for page in (first, second):
        assert_valid(FBA, "GetInventorySummariesResponse", page)
    assert (
        first["payload"]["inventorySummaries"][0]["inventoryDetails"]["inboundShippedQuantity"] == 5
    )
    assert "inventoryDetails" not in second["payload"]["inventorySummaries"][0]
    assert "pagination" not in second


def test_error_bodies_and_headers_validate(sim: AmazonSimulator, api: httpx.Client) -> None:
    unauthorized = httpx.get(f"{sim.base_url}/orders/2026-01-01/orders/111-0000000-0000000")
    bad_request = api.get("/orders/2026-01-01/orders")
    not_found = api.get("/orders/2026-01-01/orders/111-0000000-0000000")
    sim.faults.burst_429 = 1
    throttled = api.get("/fba/inventory/v1/summaries")
    sim.faults.error_next = 1
    unavailable = api.get("/orders/2026-01-01/orders/111-0000000-0000000")
    bad_confirm = api.post("/orders/v0/orders/111-0000000-0000000/shipmentConfirmation", json={})

    expected = [
        (unauthorized, 403, "Unauthorized", False),
        (bad_request, 400, "InvalidInput", True),
        (not_found, 404, "NotFound", True),
        (throttled, 429, "QuotaExceeded", False),
        (unavailable, 503, "ServiceUnavailable", False),
    ]
    for response, status, code, has_rate in expected:
        assert response.status_code == status
        assert_valid(ORDERS, "ErrorList", response.json())
        assert response.json()["errors"][0]["code"] == code
        assert response.headers["x-amzn-RequestId"]
        assert ("x-amzn-RateLimit-Limit" in response.headers) is has_rate, status
    assert throttled.json()["errors"][0]["message"] == (
        "You exceeded your quota for the requested resource."
    )
    assert bad_confirm.status_code == 404
    assert_valid(ORDERS_V0, "ConfirmShipmentErrorResponse", bad_confirm.json())


def served_samples(sim: AmazonSimulator, api: httpx.Client) -> list[tuple[str, str, Any]]:
    shipped, _ = shipped_and_cancelled(sim, api)
    order = ok(
        api.get(f"/orders/2026-01-01/orders/{shipped}", params={"includedData": ALL_ORDER_DATA})
    )["order"]
    item = ok(
        api.get(
            f"/listings/2021-08-01/items/{sim.seller_id}/MUG-1",
            params={"marketplaceIds": MARKETPLACE_ID, "includedData": "summaries,offers"},
        )
    )
    return [
        (ORDERS, "Order", order),
        (ORDERS, "OrderItem", order["orderItems"][0]),
        (ORDERS, "OrderPackage", order["packages"][0]),
        (ORDERS_V0, "Order", ok(api.get(f"/orders/v0/orders/{shipped}"))["payload"]),
        (LISTINGS, "Item", item),
        (LISTINGS, "ItemSummaryByMarketplace", item["summaries"][0]),
        (LISTINGS, "ItemOfferByMarketplace", item["offers"][0]),
    ]


def test_dropping_any_required_field_fails_validation(
    sim: AmazonSimulator, api: httpx.Client
) -> None:
    """Guards the guard: each served sample validates, and loses validity without any of its
    required fields, so a simulator that stopped sending one would fail the tests above."""
    checked = 0
    for spec, definition, sample in served_samples(sim, api):
        assert_valid(spec, definition, sample)
        required = load(spec)["definitions"][definition].get("required", [])
        for name in required:
            broken = copy.deepcopy(sample)
            del broken[name]
            assert list(validator(spec, definition).iter_errors(broken)), (definition, name)
            checked += 1
        misspelt = {**copy.deepcopy(sample), "unexpectedField": 1}
        assert list(validator(spec, definition).iter_errors(misspelt)), definition
    assert checked >= 12
