"""Inventory API: read-only viewsets over selectors, and stock commands for a WMS.

Views only translate HTTP to service calls: validate input types, call the service, return
the stock level. Domain refusals surface through ``oms.api.exceptions`` as ``{code, detail}``.
"""

from __future__ import annotations

from typing import ClassVar

from django.db.models import Case, F, IntegerField, Prefetch, Value, When
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory import selectors, services
from inventory.models import SKU, BundleComponent, IdempotencyRecord, StockLevel, Warehouse

from .filters import SKUFilterSet, StockLevelFilterSet, StockMovementFilterSet, WarehouseFilterSet
from .serializers import (
    ErrorOutputSerializer,
    SKUOutputSerializer,
    StockAdjustInputSerializer,
    StockCountInputSerializer,
    StockLevelOutputSerializer,
    StockMovementOutputSerializer,
    StockReceiveInputSerializer,
    WarehouseOutputSerializer,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"


def HasPermission(perm: str) -> type[BasePermission]:
    """A permission class granting access to authenticated users holding ``perm``."""

    class _HasPermission(BasePermission):
        def has_permission(self, request: Request, view: APIView) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perm(perm))

    _HasPermission.__name__ = f"HasPermission[{perm}]"
    return _HasPermission


# -- reads ------------------------------------------------------------------------------------


class WarehouseViewSet(viewsets.ReadOnlyModelViewSet):
    """Warehouses (own, 3PL, FBA, quarantine), looked up by code."""

    queryset = Warehouse.objects.all()
    serializer_class = WarehouseOutputSerializer
    filterset_class = WarehouseFilterSet
    lookup_field = "code"
    lookup_value_regex = "[^/]+"
    ordering = ("code",)
    ordering_fields = ("code",)


class SKUViewSet(viewsets.ReadOnlyModelViewSet):
    """SKUs with their bundle components and the quantity available to sell, by code."""

    queryset = SKU.objects.prefetch_related(
        Prefetch("bundle_lines", queryset=BundleComponent.objects.select_related("component"))
    )
    serializer_class = SKUOutputSerializer
    filterset_class = SKUFilterSet
    lookup_field = "code"
    lookup_value_regex = "[^/]+"
    ordering = ("code",)
    ordering_fields = ("code",)


class StockLevelViewSet(viewsets.ReadOnlyModelViewSet):
    """Stock per SKU and warehouse; counters change only through the stock commands."""

    queryset = selectors.stock_level_list().annotate(
        # Quarantine stock is never available to sell (selectors.stock_available's rule);
        # annotated so that available_min/available_max filter in the database.
        available_qty=Case(
            When(warehouse__kind=Warehouse.Kind.QUARANTINE, then=Value(0)),
            default=F("on_hand") - F("reserved"),
            output_field=IntegerField(),
        )
    )
    serializer_class = StockLevelOutputSerializer
    filterset_class = StockLevelFilterSet
    ordering = ("id",)
    ordering_fields = ("id",)


class StockMovementViewSet(viewsets.ReadOnlyModelViewSet):
    """The append-only stock ledger, newest first."""

    queryset = selectors.movement_list()
    serializer_class = StockMovementOutputSerializer
    filterset_class = StockMovementFilterSet
    ordering = ("-id",)
    ordering_fields = ("id",)


# -- commands ---------------------------------------------------------------------------------


class _StockCommandView(APIView):
    """POST one stock command: input serializer -> service -> the resulting stock level.

    Answers 201 when the command was applied and 200 when an ``Idempotency-Key`` seen before
    made it a replay (nothing changed).
    """

    input_serializer: ClassVar[type[serializers.Serializer]]

    def apply(self, *, data: dict, actor, idempotency_key: str) -> StockLevel:
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        serializer = self.input_serializer(data=request.data)
        if not serializer.is_valid():
            # Same {code, detail} shape as domain errors, with the per-field messages.
            raise ValidationError(
                {"code": "invalid_input", "detail": "Invalid input.", "fields": serializer.errors}
            )
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if len(key) > IdempotencyRecord._meta.get_field("key").max_length:
            raise ValidationError(
                {"code": "invalid_input", "detail": f"{IDEMPOTENCY_HEADER} is too long."}
            )
        # Only decides 200 vs 201; the service itself guarantees the key applies once.
        replay = bool(key) and IdempotencyRecord.objects.filter(key=key).exists()
        level = self.apply(data=serializer.validated_data, actor=request.user, idempotency_key=key)
        level = selectors.stock_level_list().get(pk=level.pk)
        return Response(
            StockLevelOutputSerializer(level).data,
            status=status.HTTP_200_OK if replay else status.HTTP_201_CREATED,
        )


def _command_schema(input_serializer: type[serializers.Serializer], summary: str):
    return extend_schema(
        summary=summary,
        request=input_serializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                str,
                location=OpenApiParameter.HEADER,
                required=False,
                description="Client-chosen key (max 100 chars): a retry with the same key "
                "applies the command once.",
            )
        ],
        responses={
            201: OpenApiResponse(StockLevelOutputSerializer, description="Applied."),
            200: OpenApiResponse(
                StockLevelOutputSerializer, description="Replay of an applied key; no change."
            ),
            400: OpenApiResponse(ErrorOutputSerializer, description="Invalid input."),
            409: OpenApiResponse(ErrorOutputSerializer, description="Insufficient stock."),
        },
        tags=["inventory"],
    )


class StockReceiveView(_StockCommandView):
    """Receive units into a warehouse (creates the stock level on first receipt)."""

    permission_classes = [HasPermission("inventory.receive_stock")]
    input_serializer = StockReceiveInputSerializer

    @_command_schema(StockReceiveInputSerializer, "Receive stock into a warehouse")
    def post(self, request: Request) -> Response:
        return super().post(request)

    def apply(self, *, data: dict, actor, idempotency_key: str) -> StockLevel:
        return services.stock_receive(actor=actor, idempotency_key=idempotency_key, **data)


class StockAdjustView(_StockCommandView):
    """Add or remove on-hand units with a reason; removal may take unreserved units only."""

    permission_classes = [HasPermission("inventory.adjust_stock")]
    input_serializer = StockAdjustInputSerializer

    @_command_schema(StockAdjustInputSerializer, "Adjust on-hand stock by a delta, with a reason")
    def post(self, request: Request) -> Response:
        return super().post(request)

    def apply(self, *, data: dict, actor, idempotency_key: str) -> StockLevel:
        return services.stock_adjust(actor=actor, idempotency_key=idempotency_key, **data)


class StockCountView(_StockCommandView):
    """Set on hand to a counted quantity; a count below the reserved units is refused."""

    permission_classes = [HasPermission("inventory.count_stock")]
    input_serializer = StockCountInputSerializer

    @_command_schema(StockCountInputSerializer, "Record a counted quantity")
    def post(self, request: Request) -> Response:
        return super().post(request)

    def apply(self, *, data: dict, actor, idempotency_key: str) -> StockLevel:
        return services.stock_count(actor=actor, idempotency_key=idempotency_key, **data)
