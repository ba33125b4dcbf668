"""FilterSets for every inventory list (NetBox style: codes, ``__in``, ``_min``/``_max``,
``_after``/``_before``)."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from inventory.models import SKU, StockLevel, StockMovement, Warehouse


class CharInFilter(filters.BaseInFilter, filters.CharFilter):
    """Comma-separated values: ``?code__in=A,B``."""


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(filters.NumberFilter):
    """A whole-number filter (``NumberFilter`` alone is documented as a float)."""


class SKUFilterSet(filters.FilterSet):
    code = filters.CharFilter()
    code__in = CharInFilter(field_name="code")
    kind = filters.ChoiceFilter(choices=SKU.Kind.choices)
    category = filters.CharFilter()
    barcode = filters.CharFilter()
    is_active = filters.BooleanFilter()
    q = filters.CharFilter(method="search", label="Code or title contains, or exact barcode")

    class Meta:
        model = SKU
        fields = ["code", "kind", "category", "barcode", "is_active"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(code__icontains=value) | Q(title__icontains=value) | Q(barcode=value)
        )


class WarehouseFilterSet(filters.FilterSet):
    code = filters.CharFilter()
    code__in = CharInFilter(field_name="code")
    kind = filters.MultipleChoiceFilter(choices=Warehouse.Kind.choices)
    country = filters.CharFilter()
    is_active = filters.BooleanFilter()

    class Meta:
        model = Warehouse
        fields = ["code", "kind", "country", "is_active"]


class StockLevelFilterSet(filters.FilterSet):
    """Stock levels; ``available_*`` filter the ``available_qty`` annotation of the view."""

    sku = filters.CharFilter(field_name="sku__code", label="SKU code")
    sku__in = CharInFilter(field_name="sku__code", label="SKU codes")
    warehouse = filters.CharFilter(field_name="warehouse__code", label="Warehouse code")
    warehouse_kind = filters.MultipleChoiceFilter(
        field_name="warehouse__kind", choices=Warehouse.Kind.choices
    )
    available_min = IntegerFilter(field_name="available_qty", lookup_expr="gte")
    available_max = IntegerFilter(field_name="available_qty", lookup_expr="lte")
    bin_location = filters.CharFilter()

    class Meta:
        model = StockLevel
        fields = ["sku", "warehouse", "bin_location"]


class StockMovementFilterSet(filters.FilterSet):
    kind = filters.MultipleChoiceFilter(choices=StockMovement.Kind.choices)
    sku = filters.CharFilter(field_name="sku__code", label="SKU code")
    warehouse = filters.CharFilter(field_name="warehouse__code", label="Warehouse code")
    reference = filters.CharFilter()
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = StockMovement
        fields = ["kind", "sku", "warehouse", "reference"]
