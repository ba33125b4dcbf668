"""The operations dashboard on the admin's front page: today's work and account health at a
glance, as one JSON document the page's script draws (``static/oms/dashboard.js``).

Its queries are bounded whatever the number of orders: each is a count or a short list over
an index range that only today's work falls in (the pack-by partial index, the ship-by index,
the on-hold partial index, the unanswered-returns partial index, the shipped-at index), or
reads small tables (warehouses and their carrier pickups, channels, one pending push per
listing, the metric snapshots of the last 90 days). The account-health figures come from the
snapshots the periodic health check writes (``oms.health.services.health_check``), never from
the order history itself.

This is the project's front page, so it reads the channel and returns apps too; it reads them
by name (``apps.get_model``), as those apps depend on this one and not the other way round.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from oms.health.capacity import TO_PACK_STATUSES, pickups_capacity
from oms.health.metrics import (
    FBA_METRICS,
    RATE_METRICS,
    SPECS,
    Threshold,
    at_risk_ship_hours,
    late_shipment_at_risk,
    metric_message,
    metric_orders_against,
    metric_orders_at_risk,
)
from oms.health.report import latest_report_checks
from oms.models import (
    FulfillmentModel,
    HealthAlert,
    HealthMetric,
    HoldReason,
    MetricSnapshot,
    Order,
    OrderStatus,
    SalesChannel,
)

HISTORY_DAYS = 90
# Orders listed from one dashboard link; the changelist filters on their ids.
MAX_LINKED_ORDERS = 1000
PACKED_OR_EARLIER = [*TO_PACK_STATUSES, OrderStatus.PACKED]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _orders_link(**params: Any) -> str:
    return reverse("admin:oms_health_orders") + "?" + urlencode(params)


# ----- sections -----------------------------------------------------------------------------


def _capacity(now: datetime) -> list[dict]:
    return [
        {
            "warehouse": c.name,
            "code": c.code,
            "time_zone": c.time_zone,
            "carrier": c.carrier,
            "pickup": c.pickup_key,
            "is_default": c.is_default,
            "pickup_day": c.day,
            "pickup_at": _iso(c.pickup_at),
            "pack_deadline": _iso(c.pack_deadline),
            "to_pack": c.forecast.to_pack,
            "overdue": c.overdue,
            "shipped": c.forecast.shipped,
            "worked_hours": round(c.forecast.worked_hours, 2),
            "rate_per_hour": round(c.forecast.rate_per_hour, 1),
            "hours_left": round(c.forecast.hours_left, 2),
            "capacity": c.forecast.capacity,
            "misses": c.forecast.misses,
            "message": c.message,
            "orders_url": _orders_link(
                list="to_pack", warehouse=c.warehouse_id, pickup=c.pickup_key
            ),
        }
        for c in pickups_capacity(now=now)
    ]


def _at_risk(now: datetime) -> dict:
    hours = at_risk_ship_hours()
    merchant = Order.objects.exclude(fulfillment_model=FulfillmentModel.FBA)
    # The late shipment rate's own at-risk orders: a parcel out of the door still counts late
    # unless its confirmation reaches the channel by ship-by.
    due_soon = late_shipment_at_risk(now=now).count()
    # Through the pack-by partial index: only orders waiting to ship are in it.
    late = merchant.filter(status__in=PACKED_OR_EARLIER, pack_by__lt=now, ship_by__lt=now).count()
    return {
        "hours": hours,
        "due_soon": due_soon,
        "due_soon_url": _orders_link(list="due_soon"),
        "late": late,
        "late_url": _orders_link(list="late"),
    }


def _holds() -> list[dict]:
    # The same condition as the on-hold partial index.
    rows = (
        Order.objects.exclude(hold_reason="")
        .order_by()
        .values("hold_reason")
        .annotate(count=Count("pk"))
    )
    changelist = reverse("admin:oms_order_changelist")
    return sorted(
        (
            {
                "reason": row["hold_reason"],
                "label": HoldReason(row["hold_reason"]).label
                if row["hold_reason"] in HoldReason.values
                else row["hold_reason"],
                "count": row["count"],
                "url": f"{changelist}?{urlencode({'hold': row['hold_reason']})}",
            }
            for row in rows
        ),
        key=lambda r: -r["count"],
    )


def _returns(now: datetime) -> dict | None:
    if not apps.is_installed("returns"):
        return None
    return_request = apps.get_model("returns", "ReturnRequest")
    hours = settings.RETURNS_ALERT_BEFORE_HOURS
    # The unanswered-returns partial index (status "requested", by respond_by).
    due = return_request.objects.filter(
        status="requested", respond_by__lt=now + timedelta(hours=hours)
    )
    counts = due.aggregate(
        overdue=Count("pk", filter=Q(respond_by__lt=now)),
        due_soon=Count("pk", filter=Q(respond_by__gte=now)),
    )
    items = [
        {
            "rma": r.rma,
            "channel": r.channel.name or r.channel.code,
            "order": r.order.external_id,
            "respond_by": _iso(r.respond_by),
            "url": reverse("admin:returns_returnrequest_change", args=[r.pk])
            if _admin_has("returns", "returnrequest")
            else "",
        }
        for r in due.select_related("channel", "order").order_by("respond_by")[:10]
    ]
    changelist = (
        reverse("admin:returns_returnrequest_changelist") + "?status__exact=requested"
        if _admin_has("returns", "returnrequest")
        else ""
    )
    return {"hours": hours, **counts, "items": items, "url": changelist}


def _admin_has(app_label: str, model_name: str) -> bool:
    from django.contrib import admin

    return admin.site.is_registered(apps.get_model(app_label, model_name))


def _sync(now: datetime) -> list[dict]:
    if not apps.is_installed("channels_app"):
        return []
    channel_model = apps.get_model("channels_app", "Channel")
    pending_push = apps.get_model("channels_app", "PendingPush")
    sync_log = apps.get_model("channels_app", "SyncLog")
    drift = apps.get_model("channels_app", "DriftRecord")
    channels = list(
        channel_model.objects.order_by("code").values(
            "pk", "code", "name", "kind", "is_enabled", "last_success_at", "last_error_at",
            "last_error",
        )
    )  # fmt: skip
    if not channels:
        return []
    ids = [c["pk"] for c in channels]
    since = now - timedelta(hours=24)
    backlog: dict[int, dict] = defaultdict(dict)
    for row in (
        pending_push.objects.filter(channel_id__in=ids)
        .order_by()
        .values("channel_id", "state")
        .annotate(count=Count("pk"), oldest=Min("first_enqueued_at"))
    ):
        backlog[row["channel_id"]][row["state"]] = row
    # The (channel, finished_at) index answers this for every channel at once.
    failures = dict(
        sync_log.objects.filter(channel_id__in=ids, finished_at__gte=since, ok=False)
        .order_by()
        .values("channel_id")
        .annotate(count=Count("pk"))
        .values_list("channel_id", "count")
    )
    drifted = dict(
        drift.objects.filter(found_at__gte=since)
        .order_by()
        .values("listing__channel_id")
        .annotate(count=Count("pk"))
        .values_list("listing__channel_id", "count")
    )
    result = []
    for c in channels:
        states = backlog.get(c["pk"], {})
        waiting = [states[s] for s in ("pending", "in_flight") if s in states]
        oldest = min((row["oldest"] for row in waiting if row["oldest"]), default=None)
        result.append(
            {
                "channel": c["name"] or c["code"],
                "kind": c["kind"],
                "enabled": c["is_enabled"],
                "backlog": sum(row["count"] for row in waiting),
                "oldest_pending_at": _iso(oldest),
                "failed_pushes": (states.get("failed") or {}).get("count", 0),
                "last_success_at": _iso(c["last_success_at"]),
                "last_error_at": _iso(c["last_error_at"]),
                "last_error": (c["last_error"] or "")[:200],
                "failures_24h": failures.get(c["pk"], 0),
                "drift_24h": drifted.get(c["pk"], 0),
                "url": reverse("admin:channels_app_channel_change", args=[c["pk"]])
                if _admin_has("channels_app", "channel")
                else "",
            }
        )
    return result


def _metrics(now: datetime, channels: dict[int, dict]) -> tuple[list[str], list[dict], list[dict]]:
    """The 90 days charted, each metric's latest snapshot with its values on those days
    (``None`` where none was taken), and the FBA stock figures.

    Two queries: the five columns of every snapshot of the 90 days for the series, and the
    full rows of the latest day for the current figures.
    """
    first = now.date() - timedelta(days=HISTORY_DAYS - 1)
    days = [first + timedelta(days=i) for i in range(HISTORY_DAYS)]
    position = {day: i for i, day in enumerate(days)}
    series: dict[tuple, list] = {}
    latest_day = None
    for day, channel_id, program, metric, value in MetricSnapshot.objects.filter(
        day__gte=first, day__lte=days[-1]
    ).values_list("day", "channel_id", "program", "metric", "value"):
        values = series.setdefault((channel_id, program, metric), [None] * HISTORY_DAYS)
        values[position[day]] = value
        latest_day = day if latest_day is None else max(latest_day, day)
    latest = (
        MetricSnapshot.objects.filter(day=latest_day).values(
            "channel_id",
            "program",
            "metric",
            "value",
            "numerator",
            "denominator",
            "threshold",
            "comparison",
            "status",
            "headroom",
            "at_risk",
            "computed_at",
            "window_start",
            "window_end",
        )  # fmt: skip
        if latest_day
        else []
    )
    rank = {metric: i for i, metric in enumerate((*RATE_METRICS, *FBA_METRICS))}
    links = reverse("admin:oms_health_orders")
    metrics, fba = [], defaultdict(dict)
    for last in sorted(
        latest, key=lambda r: (r["channel_id"], r["program"], rank.get(r["metric"], 99))
    ):
        channel_id, program, metric = last["channel_id"], last["program"], last["metric"]
        values = series.get((channel_id, program, metric), [])
        channel = channels.get(channel_id, {"name": str(channel_id), "marketplace": ""})
        if metric in FBA_METRICS:
            fba[channel_id].update(
                {
                    "channel": channel["name"],
                    metric: last["value"],
                    f"{metric}_series": values,
                    "computed_at": _iso(last["computed_at"]),
                }
            )
            if metric == HealthMetric.FBA_DAYS_OF_COVER:
                fba[channel_id]["units_available"] = last["numerator"]
                fba[channel_id]["units_sold"] = last["denominator"]
            continue
        spec = SPECS.get(metric)
        if spec is None:
            continue
        threshold = (
            Threshold(last["threshold"], last["comparison"])
            if last["threshold"] is not None and last["comparison"]
            else None
        )
        numerator, denominator = last["numerator"], last["denominator"]
        query = f"metric={metric}&channel={channel_id}&program={program}"
        metrics.append(
            {
                "channel_id": channel_id,
                "channel": channel["name"],
                "marketplace": channel["marketplace"],
                "program": program,
                "metric": metric,
                "label": spec.label,
                "unit": spec.unit,
                "value": last["value"],
                "numerator": numerator,
                "denominator": denominator,
                "against": denominator - numerator if spec.higher_is_better else numerator,
                "threshold": float(threshold.value) if threshold else None,
                "threshold_text": threshold.text if threshold else "",
                "higher_is_better": spec.higher_is_better,
                "status": last["status"] or "no_data",
                "headroom": last["headroom"],
                "at_risk": last["at_risk"],
                "message": metric_message(
                    metric,
                    status=last["status"],
                    headroom=last["headroom"],
                    at_risk=last["at_risk"],
                    threshold=threshold,
                ),
                "computed_at": _iso(last["computed_at"]),
                "window_start": _iso(last["window_start"]),
                "window_end": _iso(last["window_end"]),
                "against_url": f"{links}?list=against&{query}",
                "at_risk_url": f"{links}?list=at_risk&{query}",
                "series": values,
            }
        )
    return (
        [day.isoformat() for day in days],
        metrics,
        [dict(v, channel_id=k) for k, v in fba.items()],
    )


def _alerts() -> list[dict]:
    return [
        {
            "metric": HealthMetric(a.metric).label,
            "channel": a.channel.name or a.channel.code,
            "program": a.program,
            "level": a.level,
            "message": a.message,
            "raised_at": _iso(a.raised_at),
            "url": reverse("admin:oms_healthalert_change", args=[a.pk]),
        }
        for a in HealthAlert.objects.filter(resolved_at__isnull=True)
        .select_related("channel")
        .order_by("-raised_at")[:50]
    ]


def _report_checks(channels: dict[int, dict]) -> list[dict]:
    return [
        {
            "channel": channels.get(c.channel_id, {"name": c.channel_id})["name"],
            "metric": HealthMetric(c.metric).label,
            "fulfillment": c.fulfillment,
            "date_from": _iso(c.date_from),
            "date_to": _iso(c.date_to),
            "ours": c.our_value,
            "our_counts": [c.our_numerator, c.our_denominator],
            "theirs": c.their_value,
            "their_counts": [c.their_numerator, c.their_denominator],
            "their_status": c.their_status,
            "difference": c.difference,
            "checked_at": _iso(c.checked_at),
        }
        for c in latest_report_checks()
    ]


# ----- the document -----------------------------------------------------------------------


def dashboard_data(*, user: AbstractBaseUser, now: datetime | None = None) -> dict:
    """Everything the front page shows that ``user`` may see, as JSON-ready data."""
    now = now or timezone.now()
    can = user.has_perm
    data: dict[str, Any] = {"now": _iso(now)}
    channels = {
        c["pk"]: {"name": c["name"] or c["code"], "marketplace": c["marketplace"]}
        for c in SalesChannel.objects.values("pk", "code", "name", "marketplace")
    }
    if can("oms.view_order"):
        data["capacity"] = _capacity(now)
        data["at_risk"] = _at_risk(now)
        data["holds"] = _holds()
    if can("returns.view_returnrequest"):
        data["returns"] = _returns(now)
    if can("channels_app.view_channel"):
        data["sync"] = _sync(now)
    if can("oms.view_metricsnapshot"):
        data["days"], data["metrics"], data["fba"] = _metrics(now, channels)
        data["alerts"] = _alerts()
        data["report_checks"] = _report_checks(channels)
    return data


def dashboard_data_view(request: HttpRequest) -> JsonResponse:
    """``GET``: the dashboard document (admin-only; wrapped by ``admin_site.admin_view``)."""
    response = JsonResponse(dashboard_data(user=request.user))
    response["Cache-Control"] = "no-store"
    return response


def _linked_orders(request: HttpRequest):
    """The orders behind one dashboard figure, and a sentence saying what they are."""
    params = request.GET
    kind = params.get("list", "")
    now = timezone.now()
    if kind in ("against", "at_risk"):
        metric, program = params.get("metric", ""), params.get("program", "")
        if metric not in SPECS or program not in FulfillmentModel.values:
            return None, ""
        try:
            channel_id = int(params.get("channel", ""))
        except ValueError:
            return None, ""
        label = SPECS[metric].label.lower()
        if kind == "against":
            return (
                metric_orders_against(metric, channel_id=channel_id, program=program),
                f"count against the {label} ({program})",
            )
        return (
            metric_orders_at_risk(metric, channel_id=channel_id, program=program),
            f"are at risk of counting against the {label} ({program})",
        )
    merchant = Order.objects.exclude(fulfillment_model=FulfillmentModel.FBA)
    if kind == "due_soon":
        return (
            late_shipment_at_risk(now=now).order_by("ship_by"),
            f"are due to ship within {at_risk_ship_hours()} hours and not yet confirmed to "
            "the channel",
        )
    if kind == "late":
        return (
            merchant.filter(
                status__in=PACKED_OR_EARLIER, pack_by__lt=now, ship_by__lt=now
            ).order_by("ship_by"),
            "are past their ship-by and still in the warehouse",
        )
    if kind == "to_pack":
        try:
            warehouse_id = int(params.get("warehouse", ""))
        except ValueError:
            return None, ""
        pickup = next(
            (
                c
                for c in pickups_capacity(now=now)
                if c.warehouse_id == warehouse_id and c.pickup_key == params.get("pickup")
            ),
            None,
        )
        if pickup is None:
            return None, ""
        return pickup.orders_to_pack(), f"must be packed for {pickup.pickup_name}"
    return None, ""


def health_orders_view(request: HttpRequest) -> HttpResponse:
    """Open Manage Orders on the orders behind a dashboard figure (at most
    ``MAX_LINKED_ORDERS``, computed now), with a message saying what they are."""
    changelist = reverse("admin:oms_order_changelist")
    if not request.user.has_perm("oms.view_order"):
        return redirect("admin:index")
    orders, what = _linked_orders(request)
    if orders is None:
        messages.error(request, "Unknown dashboard link.")
        return redirect("admin:index")
    ids = list(orders.values_list("pk", flat=True)[: MAX_LINKED_ORDERS + 1])
    more = len(ids) > MAX_LINKED_ORDERS
    ids = ids[:MAX_LINKED_ORDERS]
    if not ids:
        messages.info(request, f"No orders {what} right now.")
    else:
        shown = f"the first {MAX_LINKED_ORDERS} " if more else ""
        messages.info(request, f"Showing {shown}{len(ids)} orders that {what}.")
    return redirect(f"{changelist}?id__in={','.join(map(str, ids or [0]))}")
