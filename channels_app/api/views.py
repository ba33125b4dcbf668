"""Inbound endpoints for API warehouses: shipments, stock snapshots, returned parcels."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.services.fulfillment import (
    inbound_return_receipt,
    inbound_shipment,
    inbound_stock_snapshot,
)

from .authentication import IsWarehouse, WarehouseSignatureAuthentication


class LineSerializer(serializers.Serializer):
    line_id = serializers.CharField()
    quantity = serializers.IntegerField(min_value=1)


class ShipmentInput(serializers.Serializer):
    event_id = serializers.CharField(required=False)
    reference = serializers.CharField()
    carrier_code = serializers.CharField()
    service = serializers.CharField(required=False, allow_blank=True)
    tracking_number = serializers.CharField()
    shipped_at = serializers.DateTimeField(required=False)
    lines = LineSerializer(many=True, required=False)


class SnapshotItem(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField(min_value=0)


class SnapshotInput(serializers.Serializer):
    event_id = serializers.CharField(required=False)
    taken_at = serializers.DateTimeField(required=False)
    items = SnapshotItem(many=True)


class ReturnItem(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField(min_value=1)


class ReturnReceiptInput(serializers.Serializer):
    event_id = serializers.CharField(required=False)
    rma = serializers.CharField()
    reference = serializers.CharField(required=False, allow_blank=True)
    lines = ReturnItem(many=True, required=False)


class InboundResultOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    duplicate = serializers.BooleanField()
    outcome = serializers.CharField()


KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, description="The warehouse's event id."
)
SIGNATURE = OpenApiParameter(
    "X-Signature",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="sha256=<hex HMAC-SHA256 of the raw body with the warehouse's secret>",
)


class _InboundView(APIView):
    authentication_classes = [WarehouseSignatureAuthentication]
    permission_classes = [IsWarehouse]
    input_serializer: type[serializers.Serializer]
    service = None

    def post(self, request, code: str):
        data = self.input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        event_id = request.headers.get("Idempotency-Key") or request.data.get("event_id")
        if not event_id:
            return Response(
                {"code": "event_id_required", "detail": "Send an Idempotency-Key header."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        result = type(self).service(
            warehouse=request.user.warehouse, event_id=str(event_id), payload=request.data
        )
        http_status = (
            status.HTTP_200_OK
            if result.duplicate
            else (status.HTTP_201_CREATED if result.ok else status.HTTP_422_UNPROCESSABLE_ENTITY)
        )
        return Response(
            {"ok": result.ok, "duplicate": result.duplicate, "outcome": result.outcome},
            status=http_status,
        )


@extend_schema(
    request=ShipmentInput,
    responses={201: InboundResultOutput, 200: InboundResultOutput, 422: InboundResultOutput},
    parameters=[KEY, SIGNATURE],
    tags=["warehouses"],
)
class ShipmentCallbackView(_InboundView):
    """A warehouse reports a shipped parcel; it is confirmed to the channel at once."""

    input_serializer = ShipmentInput
    service = staticmethod(inbound_shipment)


@extend_schema(
    request=SnapshotInput,
    responses={201: InboundResultOutput, 200: InboundResultOutput},
    parameters=[KEY, SIGNATURE],
    tags=["warehouses"],
)
class StockSnapshotView(_InboundView):
    """A warehouse's counted quantities; applied as stock counts with a drift report."""

    input_serializer = SnapshotInput
    service = staticmethod(inbound_stock_snapshot)


@extend_schema(
    request=ReturnReceiptInput,
    responses={201: InboundResultOutput, 200: InboundResultOutput, 422: InboundResultOutput},
    parameters=[KEY, SIGNATURE],
    tags=["warehouses"],
)
class ReturnReceiptView(_InboundView):
    """A returned parcel arrived: received into quarantine under its RMA."""

    input_serializer = ReturnReceiptInput
    service = staticmethod(inbound_return_receipt)
