"""The operations dashboard on the admin's front page, in Chromium: today's work, each
account-health metric with its 90-day chart drawn from data, and the links to the orders
behind a figure. Saves a screenshot to ``/tmp/ops_dashboard.png``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest

from inventory.models import CarrierPickup, Warehouse
from oms.health.capacity import next_pickup
from oms.health.services import health_check
from oms.models import HealthMetric, MetricSnapshot, Order, SalesChannel, Shipment
from oms.services.allocation import warehouse_calendar

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOT = "/tmp/ops_dashboard.png"
DAYS = 90
M = HealthMetric


@pytest.fixture
def shop(django_capture_on_commit_callbacks):
    """An Amazon channel with a late order, orders to pack for today's pickup, one on hold,
    89 days of snapshot history and today's live health check."""
    now = datetime.now(UTC)
    nyc = Warehouse.objects.create(code="nyc", name="New York", time_zone="America/New_York")
    channel = SalesChannel.objects.create(
        code="amazon-us", name="Amazon US", kind="amazon", marketplace="ATVPDKIKX0DER"
    )

    def order(external_id, **fields):
        return Order.objects.create(
            channel=channel,
            external_id=external_id,
            warehouse=nyc,
            purchased_at=fields.pop("purchased_at", now - timedelta(days=2)),
            **fields,
        )

    late = order("LATE-0001", status="allocated", ship_by=now - timedelta(days=1),
                 pack_by=now - timedelta(days=1, minutes=30))  # fmt: skip
    for i in range(19):
        shipped = order(f"OK-{i:04d}", status="shipped", ship_by=now - timedelta(days=1 + i % 5))
        Shipment.objects.create(
            order=shipped, warehouse=nyc, carrier_code="UPS", tracking_number=f"1Z{i:016d}",
            shipped_at=shipped.ship_by - timedelta(hours=2), tracking_valid=True,
            confirmation_status="sent", confirmed_at=shipped.ship_by - timedelta(hours=1),
        )  # fmt: skip
    CarrierPickup.objects.create(warehouse=nyc, carrier="USPS", is_default=True)
    ups = CarrierPickup.objects.create(
        warehouse=nyc, carrier="UPS", services="NextDay", cutoff=time(18, 0), weekdays="0123456"
    )
    deadline = next_pickup(warehouse_calendar(nyc), now) - timedelta(minutes=30)
    for i in range(4):
        order(f"PACK-{i:04d}", status="allocated", purchased_at=now,
              ship_by=deadline + timedelta(minutes=30), pack_by=deadline)  # fmt: skip
    ups_deadline = next_pickup(warehouse_calendar(nyc, ups), now) - timedelta(minutes=30)
    for i in range(2):
        order(f"NEXT-{i:04d}", status="allocated", purchased_at=now, service_level="NextDay",
              ship_by=ups_deadline + timedelta(minutes=30), pack_by=ups_deadline)  # fmt: skip
    order("HELD-0001", status="on_hold", hold_reason="insufficient_stock", purchased_at=now)
    # Test set-up only: the history the daily task would have written, a late shipment rate
    # drifting from 1% up towards 4%.
    today = now.date()
    MetricSnapshot.objects.bulk_create(
        MetricSnapshot(
            day=today - timedelta(days=back),
            channel=channel,
            program="FBM",
            metric=metric,
            numerator=numerator,
            denominator=100,
            value=numerator / 100,
            threshold=threshold,
            comparison=comparison,
            status="ok",
            headroom=3,
            computed_at=now - timedelta(days=back),
        )
        for back in range(1, DAYS)
        for metric, numerator, threshold, comparison in (
            (M.LATE_SHIPMENT_RATE_30, 1 + (DAYS - back) // 30, "0.04", "lt"),
            (M.VALID_TRACKING_RATE, 97 - back % 3, "0.95", "gt"),
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        health_check(now=now)
    return {"late": late, "channel": channel, "ups": ups}


# Reads each chart's canvas back: how many pixels carry each dataset's own line colour (taken
# from the chart's configuration), and across how many pixel columns the data series runs.
CHARTS_JS = """() => window.omsDashboard.charts.map((chart) => {
    const canvas = chart.canvas;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    const colours = chart.data.datasets.map((d) => rgb(d.borderColor));
    const counts = colours.map(() => 0);
    const columns = new Set();
    for (let i = 0; i < pixels.length; i += 4) {
        // Opaque enough that the colour read back is the one drawn, not antialiasing noise.
        if (pixels[i + 3] < 64) continue;
        colours.forEach((c, k) => {
            if (Math.abs(pixels[i] - c[0]) + Math.abs(pixels[i + 1] - c[1])
                + Math.abs(pixels[i + 2] - c[2]) <= 30) {
                counts[k] += 1;
                if (k === 0) columns.add((i / 4) % canvas.width);
            }
        });
    }
    return {
        metric: chart.$omsMetric.metric,
        program: chart.$omsMetric.program,
        labels: chart.data.labels.length,
        points: chart.data.datasets[0].data.filter((v) => v !== null).length,
        threshold: chart.data.datasets.length > 1 ? chart.data.datasets[1].data[0] : null,
        series_pixels: counts[0],
        series_columns: columns.size,
        threshold_pixels: counts.length > 1 ? counts[1] : 0,
        width: canvas.width,
    };
})"""


def test_dashboard_draws_todays_work_and_90_day_charts(admin_page, live_server, shop):
    page = admin_page
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#ops-dashboard[data-loaded='1']")
    assert page.evaluate("window.omsDashboard.error") is None

    today = page.locator("#ops-today").inner_text()
    # Each carrier cut-off has its card and countdown. The default pickup has the four due
    # at it and the late one, which can still make it; UPS the two next-day orders.
    usps = page.locator(".ops-card", has_text="USPS pickup · New York").inner_text()
    assert re.search(r"\b5\s+orders to pack", usps)
    assert re.search(r"Packing closes in \d+h \d\dm \d\ds", usps)
    ups = page.locator(f"[data-pickup='{shop['ups'].pk}']").inner_text()
    assert "UPS pickup · New York" in ups
    assert re.search(r"\b2\s+orders to pack", ups)
    # The cut-off in the warehouse's zone, whatever the browser's.
    assert re.search(r"UPS cut-off \w+,? 0?6:00\s?PM (EST|EDT|GMT-[45])", ups), ups
    assert re.search(r"Packing closes in \d+h \d\dm \d\ds", ups)
    assert re.search(r"\b1\s+past their ship-by, still in the warehouse", today)
    assert "Insufficient stock" in today

    charts = page.evaluate(CHARTS_JS)
    by_metric = {(c["metric"], c["program"]): c for c in charts}
    lsr = by_metric[(M.LATE_SHIPMENT_RATE_30, "FBM")]
    # 89 days of history and today's live figure, with the threshold drawn beside them.
    assert (lsr["labels"], lsr["points"]) == (DAYS, DAYS)
    assert lsr["threshold"] == pytest.approx(4.0)
    assert by_metric[(M.VALID_TRACKING_RATE, "FBM")]["points"] == DAYS
    assert len([c for c in charts if c["program"] == "FBM"]) == 7
    # Read back from the canvases: every chart drew its threshold line; each metric with data
    # drew its series in the series' colour (a 90-day line across the plot, today's point
    # alone as a dot), and a metric with no data has none of that colour at all.
    for chart in charts:
        assert chart["threshold_pixels"] > 50, chart
        if chart["points"]:
            assert chart["series_pixels"] >= 10, chart
        else:
            assert chart["series_pixels"] == 0, chart
    for metric in (M.LATE_SHIPMENT_RATE_30, M.VALID_TRACKING_RATE):
        assert by_metric[(metric, "FBM")]["series_columns"] > 0.8 * lsr["width"]
    with_data = {M.ORDER_DEFECT_RATE, M.LATE_SHIPMENT_RATE_10, M.CANCELLATION_RATE}
    assert all(by_metric[(metric, "FBM")]["points"] >= 1 for metric in with_data)
    for metric in (M.ON_TIME_DELIVERY_RATE, M.LATE_RETURN_ANSWER_RATE):
        assert by_metric[(metric, "FBM")]["points"] == 0

    row = page.locator(f"tr[data-metric='{M.LATE_SHIPMENT_RATE_30}'][data-program='FBM']")
    assert "Breached" in row.inner_text()
    assert "below 4%" in row.inner_text()
    page.locator("#ops-metrics").scroll_into_view_if_needed()
    page.screenshot(path=SHOT, full_page=True)

    row.locator("a", has_text="1 / ").first.click()
    page.wait_for_selector("#result_list")
    assert "LATE-0001" in page.locator("#result_list tbody").inner_text()
    assert "OK-0001" not in page.locator("#result_list tbody").inner_text()
    assert (
        "count against the late shipment rate (30 days)"
        in page.locator(".messagelist").inner_text()
    )


def test_dashboard_shows_the_alert_banner(admin_page, live_server, shop):
    page = admin_page
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#ops-dashboard[data-loaded='1']")
    banner = page.locator(".ops-alerts").inner_text()
    assert "account-health alert" in banner
    assert "Amazon US FBM: Late shipment rate (10 days)" in banner
