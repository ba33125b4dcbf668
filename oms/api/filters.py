"""FilterSets for the orders API (NetBox style: codes, multiple choices, ``_after``/``_before``)."""

from __future__ import annotations

import operator
import re
from datetime import datetime, timedelta
from functools import reduce

import django_filters as filters
from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from oms.models import (
    OPEN_STATUSES,
    FulfillmentModel,
    HoldReason,
    Order,
    OrderLine,
    OrderStatus,
    Shipment,
)

# Tracking numbers are stored the way oms.carriers.tracking_validate normalises them.
_TRACKING_SEPARATORS = re.compile(r"[\s-]+")


class CharInFilter(filters.BaseInFilter, filters.CharFilter):
    """Comma-separated values: ``?channel__in=amazon-us,shop``."""


DEADLINE_STATES = [("late", "Late"), ("at_risk", "At risk"), ("on_time", "On time")]


def deadline_q(state: str, *, now: datetime | None = None) -> Q:
    """Open merchant-fulfilled orders in deadline ``state`` (``oms.deadlines.deadline_status``:
    late after ship-by, at risk from ``OMS_AT_RISK_MINUTES`` before pack-by), as ranges on the
    indexed ``ship_by``/``pack_by``; the admin's ship-by filter draws the same lines. FBA
    orders are left out: Amazon ships them, their deadlines are only informational."""
    now = now or timezone.now()
    horizon = now + timedelta(minutes=settings.OMS_AT_RISK_MINUTES)
    in_time = {
        "late": Q(ship_by__lt=now),
        "at_risk": Q(ship_by__gte=now, pack_by__lte=horizon),
        "on_time": Q(pack_by__gt=horizon, ship_by__gt=horizon),
    }[state]
    return Q(status__in=OPEN_STATUSES) & ~Q(fulfillment_model=FulfillmentModel.FBA) & in_time


class OrderFilterSet(filters.FilterSet):
    channel = filters.CharFilter(field_name="channel__code", label="Sales channel code")
    channel__in = CharInFilter(field_name="channel__code", label="Sales channel codes")
    status = filters.MultipleChoiceFilter(choices=OrderStatus.choices)
    fulfillment_model = filters.MultipleChoiceFilter(choices=FulfillmentModel.choices)
    hold_reason = filters.MultipleChoiceFilter(choices=HoldReason.choices)
    external_id = filters.CharFilter(label="Channel order id")
    purchased_after = filters.IsoDateTimeFilter(field_name="purchased_at", lookup_expr="gte")
    purchased_before = filters.IsoDateTimeFilter(field_name="purchased_at", lookup_expr="lt")
    ship_by_before = filters.IsoDateTimeFilter(field_name="ship_by", lookup_expr="lt")
    sku = filters.CharFilter(method="filter_sku", label="Has a line with this channel SKU")
    tracking = filters.CharFilter(method="filter_tracking", label="Has a shipment with this number")
    deadline = filters.MultipleChoiceFilter(
        choices=DEADLINE_STATES, method="filter_deadline", label="Where it stands on ship-by"
    )
    at_risk = filters.BooleanFilter(
        method="filter_at_risk", label="At risk of missing ship-by (not yet late)"
    )

    class Meta:
        model = Order
        fields = ["channel", "status", "fulfillment_model", "hold_reason", "external_id"]

    # EXISTS rather than a join: an order with two matching lines must not appear twice.
    def filter_sku(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        lines = OrderLine.objects.filter(order=OuterRef("pk"), seller_sku=value.strip())
        return queryset.filter(Exists(lines))

    def filter_tracking(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        number = _TRACKING_SEPARATORS.sub("", value).upper()
        shipments = Shipment.objects.filter(order=OuterRef("pk"), tracking_number=number)
        return queryset.filter(Exists(shipments))

    def filter_deadline(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        if not value:
            return queryset
        now = timezone.now()
        return queryset.filter(reduce(operator.or_, (deadline_q(v, now=now) for v in value)))

    def filter_at_risk(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        at_risk = deadline_q("at_risk")
        return queryset.filter(at_risk) if value else queryset.exclude(at_risk)
