"""FilterSet for the returns API (NetBox style: codes, multiple choices, ``_after``/``_before``)."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from inventory.models import SKU
from oms.models import FulfillmentModel, OrderLine
from returns.models import ReturnLine, ReturnRequest, ReturnStatus


class ReturnRequestFilterSet(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=ReturnStatus.choices)
    channel = filters.CharFilter(field_name="channel__code", label="Sales channel code")
    rma = filters.CharFilter(label="RMA (exact)")
    order_external_id = filters.CharFilter(
        field_name="order__external_id", label="Channel order id (exact)"
    )
    return_id = filters.CharFilter(field_name="channel_return_id", label="Channel return id")
    fulfillment_model = filters.MultipleChoiceFilter(choices=FulfillmentModel.choices)
    sku = filters.CharFilter(method="filter_sku", label="Has a line with this SKU")
    respond_by_before = filters.IsoDateTimeFilter(field_name="respond_by", lookup_expr="lt")
    respond_by_after = filters.IsoDateTimeFilter(field_name="respond_by", lookup_expr="gte")
    requested_after = filters.IsoDateTimeFilter(field_name="requested_at", lookup_expr="gte")
    overdue = filters.BooleanFilter(
        method="filter_overdue", label="Still unanswered after its respond-by time"
    )

    class Meta:
        model = ReturnRequest
        fields = ["status", "channel", "rma", "order_external_id", "fulfillment_model"]

    # EXISTS rather than a join: a return with two matching lines must not appear twice.
    def filter_sku(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        lines = ReturnLine.objects.filter(
            Q(order_line_id__in=OrderLine.objects.filter(seller_sku=value).values("pk"))
            | Q(sku_id__in=SKU.objects.filter(code=value).values("pk")),
            return_request=OuterRef("pk"),
        )
        return queryset.filter(Exists(lines))

    def filter_overdue(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        # The same condition as the partial index on respond_by for unanswered requests.
        overdue = Q(status=ReturnStatus.REQUESTED, respond_by__lte=timezone.now())
        return queryset.filter(overdue) if value else queryset.exclude(overdue)
