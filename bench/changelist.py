"""The Manage Orders admin changelist (``/admin/oms/order/``) at 1,000,000 orders.

Bulk-loads the orders in SQL (``INSERT ... SELECT generate_series``: a spread of channels,
fulfillment models, statuses by age, deadlines, ~1.5 lines per order, a shipment for every
shipped one), then requests the changelist as a logged-in superuser through
``django.test.Client`` with ``DEBUG`` off: the default page and the common filters, the median
of several requests each, and the queries of one more request. The floor is each page's main
``SELECT`` (the ``ORDER BY ... LIMIT`` over ``oms_order``, as Django sent it) run raw through
psycopg in the same run. Pages slower than the target print their main query's plan.

The database (``<bench database>_changelist``) is kept between runs and reused when it already
holds the orders; ``BENCH_CHANGELIST_RELOAD=1`` (or ``--reload``) loads it again.
``BENCH_ORDERS`` sets the number of orders (default 1,000,000), ``BENCH_REPEAT`` the requests
per page (default 7). Headlines: ``RESULT changelist_queries`` and ``RESULT changelist_ms``
for the default page.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode, urlparse

from bench.common import bench_database_url, psycopg_dsn, result, setup_django

ORDERS = int(os.environ.get("BENCH_ORDERS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "7"))
SKUS = 5_000
TARGET_MS = 300
TARGET_QUERIES = 15
SLOW_QUERY_MS = 50
LOAD_VERSION = 2
URL = "/admin/oms/order/"

# (code, kind, marketplace, share of orders)
CHANNELS = [
    ("amazon-us", "amazon", "ATVPDKIKX0DER", 0.45),
    ("amazon-ca", "amazon", "A2EUQ1WTGCTBG2", 0.05),
    ("shopify", "shopify", "", 0.20),
    ("ebay", "ebay", "", 0.10),
    ("walmart", "walmart", "", 0.10),
    ("webshop", "webshop", "", 0.10),
]
FIRST_NAMES = [
    "Ada", "Ben", "Cara", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jon",
    "Kai", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Garcia", "Nguyen", "Okafor", "Müller", "Rossi", "Kowalski", "Tanaka",
    "Haddad", "Johnson", "Silva", "Cohen", "Larsen", "Brown", "Dubois", "Patel",
]  # fmt: skip
CITIES = [  # city, region, postal code
    ("Springfield", "IL", "62701"), ("Austin", "TX", "73301"), ("Portland", "OR", "97201"),
    ("Denver", "CO", "80202"), ("Buffalo", "NY", "14201"), ("Tampa", "FL", "33601"),
    ("Phoenix", "AZ", "85001"), ("Madison", "WI", "53703"), ("Raleigh", "NC", "27601"),
    ("Boise", "ID", "83702"),
]  # fmt: skip
STREETS = ["Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lake Blvd"]


def _reload_requested() -> bool:
    return "--reload" in sys.argv or os.environ.get("BENCH_CHANGELIST_RELOAD") == "1"


def _changelist_database_url() -> str:
    parsed = urlparse(bench_database_url())
    name = parsed.path.lstrip("/") + "_changelist"
    return parsed._replace(path=f"/{name}").geturl()


def _sql_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


# -- loading ----------------------------------------------------------------------------------


def _reference_data() -> dict:
    """Warehouses, channels, SKUs and the benchmark superuser, created if missing."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from inventory.models import SKU, Warehouse
    from oms.models import RoutingRule, SalesChannel

    nyc, _ = Warehouse.objects.get_or_create(
        code="nyc", defaults={"time_zone": "America/New_York", "name": "New York"}
    )
    reno, _ = Warehouse.objects.get_or_create(
        code="reno", defaults={"kind": Warehouse.Kind.THREE_PL, "name": "Reno 3PL"}
    )
    fba, _ = Warehouse.objects.get_or_create(code="fba", defaults={"kind": Warehouse.Kind.FBA})
    channels = []
    for code, kind, marketplace, _share in CHANNELS:
        channel, _ = SalesChannel.objects.get_or_create(
            code=code,
            defaults={
                "kind": kind,
                "marketplace": marketplace,
                "name": code.replace("-", " ").title(),
                "fba_warehouse": fba if kind == "amazon" else None,
            },
        )
        RoutingRule.objects.get_or_create(channel=channel, warehouse=nyc, defaults={"priority": 1})
        RoutingRule.objects.get_or_create(channel=channel, warehouse=reno, defaults={"priority": 2})
        channels.append(channel)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO inventory_sku (code, title, barcode, weight_grams, category, kind,"
            " is_active) SELECT 'SKU-' || lpad(i::text, 5, '0'), 'Item ' || i, '', 250,"
            " 'general', 'standard', true FROM generate_series(0, %s) i"
            " ON CONFLICT (code) DO NOTHING",
            [SKUS - 1],
        )
    sku_ids = dict(SKU.objects.filter(code__startswith="SKU-").values_list("code", "pk"))
    user_model = get_user_model()
    admin, created = user_model.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        admin.set_unusable_password()
        admin.save(update_fields=["password"])
    return {
        "warehouses": {"nyc": nyc.pk, "reno": reno.pk, "fba": fba.pk},
        "channels": channels,
        "sku_ids": sku_ids,
        "admin": admin,
    }


def _orders_sql(ref: dict) -> str:
    """One INSERT ... SELECT for every order: ids follow purchase time (one a minute), the
    status follows the order's age, as in a live shop."""
    wh = ref["warehouses"]
    channel_ids = [c.pk for c in ref["channels"]]
    kinds = [c.kind for c in ref["channels"]]
    codes = [c.code for c in ref["channels"]]
    bounds, total = [], 0.0
    for _code, _kind, _market, share in CHANNELS:
        total += share
        bounds.append(round(total, 4))
    channel_case = " ".join(
        f"WHEN r_channel < {bound} THEN {i + 1}" for i, bound in enumerate(bounds[:-1])
    )
    return f"""
    INSERT INTO oms_order (
        channel_id, external_id, fulfillment_model, status, status_before_hold, hold_reason,
        hold_detail, cancel_reason, warehouse_id, purchased_at, channel_updated_at,
        earliest_ship_at, latest_ship_at, latest_delivery_at, ship_by, pack_by, deadline_rule,
        payment_expires_at, shipped_at, delivered_at, cancelled_at, is_prime, service_level,
        buyer_name, buyer_email, ship_name, ship_line1, ship_line2, ship_line3, ship_city,
        ship_region, ship_postal_code, ship_country, ship_phone, currency, total,
        shipping_total, tax_total, raw_payload, payload_hash, oversold, created_at, updated_at
        /*more columns*/
    )
    SELECT
        channel_id, external_id, model, status,
        CASE WHEN status = 'on_hold' THEN 'awaiting' ELSE '' END,
        CASE WHEN status <> 'on_hold' THEN ''
             WHEN r_hold < 0.4 THEN 'unknown_sku'
             WHEN r_hold < 0.75 THEN 'insufficient_stock'
             WHEN r_hold < 0.9 THEN 'missing_address'
             ELSE 'manual' END,
        CASE WHEN status = 'on_hold' THEN 'held while loading the benchmark' ELSE '' END,
        CASE WHEN status = 'cancelled' THEN 'buyer_request' ELSE '' END,
        CASE WHEN model = 'FBA' THEN {wh["fba"]}
             WHEN status IN ('pending', 'awaiting', 'on_hold') THEN NULL
             WHEN r_wh < 0.7 THEN {wh["nyc"]} ELSE {wh["reno"]} END,
        purchased_at, purchased_at,
        NULL, ship_by, ship_by + interval '5 days', ship_by, ship_by - interval '30 minutes',
        CASE WHEN model = 'FBA' THEN 'fba' ELSE 'handling' END,
        CASE WHEN status = 'pending' THEN purchased_at + interval '1 hour' END,
        CASE WHEN status IN ('shipped', 'delivered', 'partially_shipped')
             THEN purchased_at + interval '20 hours' END,
        CASE WHEN status = 'delivered' THEN purchased_at + interval '3 days' END,
        CASE WHEN status = 'cancelled' THEN purchased_at + interval '2 hours' END,
        kind = 'amazon' AND r_model < 0.3,
        CASE WHEN r_model < 0.1 THEN 'Expedited' ELSE 'Standard' END,
        buyer, lower(replace(buyer, ' ', '.')) || '.' || g || '@example.com', buyer,
        (1 + g % 9999) || ' ' || street, '', '',
        (city)[1], (city)[2], (city)[3],
        CASE WHEN code = 'amazon-ca' THEN 'CA' ELSE 'US' END, '',
        CASE WHEN code = 'amazon-ca' THEN 'CAD' ELSE 'USD' END,
        total, CASE WHEN total > 50 THEN 0 ELSE 4.95 END, round(total * 0.07, 2),
        jsonb_build_object('id', external_id, 'status', status, 'purchased_at', purchased_at,
                           'buyer', buyer, 'total', total::text),
        md5(g::text) || md5(external_id), false,
        purchased_at + interval '2 minutes', purchased_at + interval '5 minutes'
        /*more values*/
    FROM (
        SELECT *,
            CASE
                WHEN age > interval '3 days' THEN CASE
                    WHEN r_status < 0.06 THEN 'cancelled'
                    WHEN r_status < 0.063 THEN 'on_hold'
                    WHEN r_status < 0.25 THEN 'shipped'
                    ELSE 'delivered' END
                WHEN age > interval '1 day' THEN CASE
                    WHEN r_status < 0.03 THEN 'cancelled'
                    WHEN r_status < 0.06 THEN 'on_hold'
                    WHEN r_status < 0.10 THEN 'partially_shipped'
                    WHEN r_status < 0.15 THEN 'packed'
                    WHEN r_status < 0.20 THEN 'allocated'
                    WHEN r_status < 0.60 THEN 'shipped'
                    ELSE 'delivered' END
                ELSE CASE
                    WHEN r_status < 0.05 THEN 'pending'
                    WHEN r_status < 0.10 THEN 'awaiting'
                    WHEN r_status < 0.40 THEN 'allocated'
                    WHEN r_status < 0.55 THEN 'released'
                    WHEN r_status < 0.65 THEN 'picked'
                    WHEN r_status < 0.72 THEN 'packed'
                    WHEN r_status < 0.75 THEN 'partially_shipped'
                    WHEN r_status < 0.80 THEN 'on_hold'
                    WHEN r_status < 0.82 THEN 'cancelled'
                    ELSE 'shipped' END
            END AS status,
            CASE WHEN kind <> 'amazon' THEN 'FBM'
                 WHEN r_model < 0.4 THEN 'FBA'
                 WHEN r_model < 0.5 THEN 'SFP'
                 ELSE 'FBM' END AS model,
            CASE WHEN kind = 'amazon'
                 THEN format('11%s-%s-%s', g % 10, lpad(g::text, 7, '0'),
                             lpad(((g::bigint * 7919) % 10000000)::text, 7, '0'))
                 ELSE (1000000 + g)::text END AS external_id,
            -- Due a day and a quarter after purchase, so at any moment some orders are at
            -- risk and some are late, whatever the time of day.
            purchased_at + interval '30 hours' AS ship_by,
            round((10 + random() * 190)::numeric, 2) AS total
        FROM (
            SELECT g, purchased_at, now() - purchased_at AS age,
                r_status, r_model, r_wh, r_hold,
                ({_sql_array(STREETS)})[1 + (g % {len(STREETS)})] AS street,
                ({_sql_array(FIRST_NAMES)})[1 + floor(r_name * {len(FIRST_NAMES)})::int]
                    || ' ' || ({_sql_array(LAST_NAMES)})[1 + (g % {len(LAST_NAMES)})] AS buyer,
                ARRAY[({_sql_array([c[0] for c in CITIES])})[1 + g % {len(CITIES)}],
                      ({_sql_array([c[1] for c in CITIES])})[1 + g % {len(CITIES)}],
                      ({_sql_array([c[2] for c in CITIES])})[1 + g % {len(CITIES)}]] AS city,
                (ARRAY{channel_ids}::bigint[])[ch] AS channel_id,
                ({_sql_array(kinds)})[ch] AS kind,
                ({_sql_array(codes)})[ch] AS code
            FROM (
                SELECT g,
                    now() - ({ORDERS} - g) * interval '1 minute'
                        - random() * interval '50 seconds' AS purchased_at,
                    CASE {channel_case} ELSE {len(CHANNELS)} END AS ch,
                    r_status, r_model, r_wh, r_hold, r_name
                FROM (
                    SELECT g, random() AS r_channel, random() AS r_status,
                        random() AS r_model, random() AS r_wh, random() AS r_hold,
                        random() AS r_name
                    FROM generate_series(1, {ORDERS}) g
                ) rnd
            ) base
        ) named
    ) orders
    ORDER BY g
    """


def _lines_sql(first_sku_id: int) -> str:
    """~1.5 lines per order (6 in 10 have one, 3 two, 1 three); popular SKUs sell more."""
    return f"""
    INSERT INTO oms_orderline (order_id, sku_id, seller_sku, channel_line_id, title, quantity,
        quantity_shipped, quantity_cancelled, unit_price /*more columns*/)
    SELECT id,
        CASE WHEN unmapped THEN NULL ELSE {first_sku_id} + idx END,
        CASE WHEN unmapped THEN 'UNMAPPED-' || idx ELSE 'SKU-' || lpad(idx::text, 5, '0') END,
        lpad((id * 10 + n)::text, 14, '0'),
        'Item ' || idx,
        quantity,
        CASE WHEN status IN ('shipped', 'delivered') THEN quantity
             WHEN status = 'partially_shipped' AND n = 1 THEN quantity
             ELSE 0 END,
        CASE WHEN status = 'cancelled' THEN quantity ELSE 0 END,
        round((5 + random() * 95)::numeric, 2)
        /*more values*/
    FROM (
        SELECT o.id, o.status, n,
            o.hold_reason = 'unknown_sku' AND n = 1 AS unmapped,
            floor(power(random(), 2) * {SKUS})::int AS idx,
            1 + floor(random() * random() * 3)::int AS quantity
        FROM oms_order o
        CROSS JOIN LATERAL generate_series(
            1, CASE WHEN o.id % 10 < 6 THEN 1 WHEN o.id % 10 < 9 THEN 2 ELSE 3 END) n
    ) lines
    ORDER BY id, n
    """


SHIPMENTS_SQL = """
INSERT INTO oms_shipment (order_id, warehouse_id, carrier_code, carrier_name, service,
    tracking_number, shipped_at, confirmation_status, confirmation_attempts,
    confirmation_error, confirmed_at, idempotency_key, source, created_at /*more columns*/)
SELECT id, warehouse_id,
    CASE WHEN fulfillment_model = 'FBA' THEN 'AMAZON'
         ELSE (ARRAY['UPS', 'USPS', 'FEDEX', 'DHL'])[1 + id % 4] END,
    CASE WHEN fulfillment_model = 'FBA' THEN 'Fulfilled by the channel'
         ELSE (ARRAY['UPS', 'USPS', 'FedEx', 'DHL Express'])[1 + id % 4] END,
    CASE WHEN fulfillment_model = 'FBA' THEN '' ELSE 'Ground' END,
    CASE WHEN fulfillment_model = 'FBA' THEN ''
         ELSE CASE id % 4
             WHEN 0 THEN '1Z' || upper(substr(md5(id::text), 1, 16))
             WHEN 1 THEN '9400' || lpad(id::text, 18, '0')
             WHEN 2 THEN lpad(id::text, 12, '7')
             ELSE lpad(id::text, 10, '3') END END,
    shipped_at,
    CASE WHEN fulfillment_model = 'FBA' THEN 'not_required' ELSE 'sent' END,
    CASE WHEN fulfillment_model = 'FBA' THEN 0 ELSE 1 END, '',
    CASE WHEN fulfillment_model = 'FBA' THEN NULL ELSE shipped_at + interval '10 minutes' END,
    '', CASE WHEN fulfillment_model = 'FBA' THEN 'channel' ELSE 'api' END, shipped_at
    /*more values*/
FROM oms_order
WHERE status IN ('shipped', 'delivered', 'partially_shipped')
ORDER BY id
"""

SHIPMENT_LINES_SQL = """
INSERT INTO oms_shipmentline (shipment_id, order_line_id, quantity /*more columns*/)
SELECT s.id, l.id, l.quantity_shipped /*more values*/
FROM oms_shipment s JOIN oms_orderline l ON l.order_id = s.order_id
WHERE l.quantity_shipped > 0
"""


def _with_defaults(sql: str) -> str:
    """``sql`` with the columns it does not name (added to the model since this loader was
    written) set to their field's default, so that a new NOT NULL column does not stop the
    load. Nullable columns are left NULL."""
    from django.apps import apps
    from django.db import models

    table, named = re.search(r"INSERT INTO (\w+) \((.*?)/\*more columns\*/", sql, re.S).groups()
    named_columns = {column.strip() for column in named.split(",")}
    model = next(m for m in apps.get_models() if m._meta.db_table == table)
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.column in named_columns or field.primary_key or field.null:
            continue
        default = field.get_default()
        if isinstance(field, models.DateTimeField):
            value = "now()"
        elif isinstance(field, models.JSONField):
            value = "'" + json.dumps(default).replace("'", "''") + "'::jsonb"
        elif isinstance(default, bool):
            value = "true" if default else "false"
        elif isinstance(default, int | float | Decimal):
            value = str(default)
        elif isinstance(default, str):
            value = "'" + default.replace("'", "''") + "'"
        else:
            raise RuntimeError(f"{table}.{field.column} needs a value: extend bench.changelist")
        columns.append(field.column)
        values.append(value)
    extra_columns = "".join(f", {column}" for column in columns)
    extra_values = "".join(f", {value}" for value in values)
    return sql.replace("/*more columns*/", extra_columns).replace("/*more values*/", extra_values)


def _load(url: str, ref: dict) -> None:
    import psycopg

    skus = ref["sku_ids"]
    first = skus["SKU-00000"]
    if any(skus[f"SKU-{i:05d}"] != first + i for i in range(SKUS)):
        raise RuntimeError("benchmark SKU ids are not contiguous: load with --reload")
    started = time.perf_counter()
    with psycopg.connect(psycopg_dsn(url)) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("TRUNCATE oms_order RESTART IDENTITY CASCADE")
        conn.execute("SELECT setseed(0.42)")
        steps = [
            ("orders", _orders_sql(ref)),
            ("order lines", _lines_sql(first)),
            ("shipments", SHIPMENTS_SQL),
            ("shipment lines", SHIPMENT_LINES_SQL),
        ]
        for name, sql in steps:
            t0 = time.perf_counter()
            rows = conn.execute(_with_defaults(sql)).rowcount
            conn.commit()
            print(f"  loaded {rows:,} {name} in {time.perf_counter() - t0:.1f} s", flush=True)
    with psycopg.connect(psycopg_dsn(url), autocommit=True) as conn:
        marker = f"{_marker()}, loaded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        conn.execute(f"COMMENT ON TABLE oms_order IS '{marker}'")
        t0 = time.perf_counter()
        for table in ("oms_order", "oms_orderline", "oms_shipment", "oms_shipmentline"):
            conn.execute(f"VACUUM ANALYZE {table}")
        print(f"  VACUUM ANALYZE in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)


def _loaded(url: str) -> str:
    """The marker of the data set in the database ("" when none was loaded)."""
    import psycopg

    with psycopg.connect(psycopg_dsn(url)) as conn:
        row = conn.execute("SELECT obj_description('oms_order'::regclass, 'pg_class')").fetchone()
    return row[0] or ""


def _marker() -> str:
    """What was loaded, kept as the orders table's comment: a change to the loader (bump
    ``LOAD_VERSION``) or to ``BENCH_ORDERS`` loads again."""
    return f"bench.changelist v{LOAD_VERSION}: {ORDERS} orders"


# -- measuring --------------------------------------------------------------------------------

# The page's rows: the SELECT over oms_order with the changelist's ORDER BY (and a LIMIT when
# there is more than a page; the paginator's capped COUNT has no ORDER BY).
MAIN_QUERY = re.compile(r'^SELECT (?!COUNT\().*FROM "oms_order".*\bORDER BY\b', re.S)


@dataclass
class Page:
    ms: float
    status: int
    queries: list[tuple[float, str]]  # (ms, SQL) of one request

    @property
    def main_sql(self) -> str:
        return next((sql for _ms, sql in self.queries if MAIN_QUERY.search(sql)), "")


def _pages(ref: dict) -> dict[str, str]:
    """The default page and the common filters, as this admin names their parameters."""
    from django.contrib import admin
    from django.contrib.admin import SimpleListFilter

    from oms.models import Order

    model_admin = admin.site._registry[Order]
    pages = {"default": URL}
    field_filters, deadline_filter = set(), None
    for item in model_admin.list_filter:
        if isinstance(item, type) and issubclass(item, SimpleListFilter):
            values = [
                str(value) for value, _label in item(None, {}, Order, model_admin).lookup_choices
            ]
            if "at_risk" in values:
                deadline_filter = item.parameter_name
        elif isinstance(item, str):
            field_filters.add(item)
    if "status" in field_filters:
        pages["status=allocated"] = f"{URL}?status__exact=allocated"
    if deadline_filter:
        for value in ("at_risk", "late"):
            pages[f"{deadline_filter}={value}"] = f"{URL}?{urlencode({deadline_filter: value})}"
    if model_admin.search_fields:
        pages["search SKU-00042"] = f"{URL}?q=SKU-00042"
    if "channel" in field_filters:
        shopify = next(c for c in ref["channels"] if c.code == "shopify")
        pages["channel=shopify"] = f"{URL}?channel__id__exact={shopify.pk}"
    return pages


def _measure(client, url: str) -> Page:
    """Median server time of ``url`` and the queries of one more request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm caches (templates, session, plans)
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    queries = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
    return Page(statistics.median(times), response.status_code, queries)


def _raw_ms(url: str, sql: str) -> tuple[float, int]:
    """Median time of ``sql`` run raw through psycopg, and the rows it returns."""
    import psycopg

    with psycopg.connect(psycopg_dsn(url)) as conn:
        rows = len(conn.execute(sql).fetchall())
        times = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            conn.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), rows


def _explain(url: str, sql: str) -> str:
    import psycopg

    with psycopg.connect(psycopg_dsn(url)) as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()
    return "\n".join("    " + row[0] for row in rows)


def main() -> None:
    url = _changelist_database_url()
    os.environ["BENCH_DATABASE_URL"] = url
    # Django's test client asks for host "testserver"; DEBUG is off, as in production.
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    reload = _reload_requested()
    setup_django(fresh=reload)
    from django.contrib import admin
    from django.test import Client

    from oms.models import Order

    ref = _reference_data()
    database = urlparse(url).path.lstrip("/")
    loaded = _loaded(url)
    if reload or not loaded.startswith(_marker() + ","):
        print(f"loading {ORDERS:,} orders into {database}", flush=True)
        _load(url, ref)
    else:
        # Deadlines are relative to the load time: an old data set has fewer open orders.
        print(f"reusing {database} ({loaded}; BENCH_CHANGELIST_RELOAD=1 reloads)", flush=True)

    if Order not in admin.site._registry:
        print("oms.admin does not register Order yet: nothing to measure", flush=True)
        sys.exit(1)
    client = Client()
    client.force_login(ref["admin"])
    figures = {}
    for name, path in _pages(ref).items():
        page = _measure(client, path)
        if page.status != 200:
            print(f"{name}: HTTP {page.status} for {path}", flush=True)
            continue
        main_sql = page.main_sql
        raw, rows = _raw_ms(url, main_sql) if main_sql else (float("nan"), 0)
        figures[name] = (page.ms, len(page.queries), raw)
        print(
            f"{name}: {page.ms:.1f} ms, {len(page.queries)} queries, {rows} rows; main SELECT "
            f"raw {raw:.1f} ms, ratio {page.ms / raw:.3f}  [{path}]",
            flush=True,
        )
        if page.ms > TARGET_MS or len(page.queries) > TARGET_QUERIES:
            print(f"  over target ({TARGET_MS} ms, {TARGET_QUERIES} queries); slow queries:")
            for ms, sql in page.queries:
                if ms > SLOW_QUERY_MS:
                    print(f"  {ms:.0f} ms: {sql}\n{_explain(url, sql)}", flush=True)
    if "default" not in figures:
        print("the default changelist page did not answer 200", flush=True)
        sys.exit(1)
    ms, queries, raw = figures["default"]
    result("changelist_queries", queries, "queries")
    result("changelist_ms", ms, "ms", floor=raw)


if __name__ == "__main__":
    main()
