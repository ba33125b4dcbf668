"""Orders API: list and detail over the selectors, order push for webshops, shipments for a
WMS/3PL.

Views only translate HTTP to service calls: validate input types, call ``order_ingest`` or
``shipment_create``, answer with the output serializer. Domain refusals surface through
``oms.api.exceptions`` as ``{code, detail}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from inventory.api.serializers import ErrorOutputSerializer
from inventory.api.views import IDEMPOTENCY_HEADER, HasPermission
from oms.api.exceptions import domain_exception_handler
from oms.exceptions import DomainError, OrderError
from oms.models import Order, OrderLine, OrderPayloadVersion, Shipment
from oms.selectors import order_detail_queryset, order_list
from oms.services.ingestion import order_ingest
from oms.services.shipments import shipment_create

from .filters import OrderFilterSet
from .serializers import (
    OrderCreateInputSerializer,
    OrderDetailOutputSerializer,
    OrderOutputSerializer,
    ShipmentCreatedOutputSerializer,
    ShipmentCreateInputSerializer,
)

# Where the Idempotency-Key of an order push is kept: in the payload stored with the order
# (OrderPayloadVersion), so that a replay can be recognised by any process.
PAYLOAD_KEY_FIELD = "_idempotency_key"
IDEMPOTENCY_KEY_MAX = 100
# Refusals that are about the order's state, not the request: 409 rather than 400.
STATE_CONFLICT_CODES = {"not_shippable"}


def _idempotency_key(request: Request) -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise ValidationError(
            {"code": "invalid_input", "detail": f"{IDEMPOTENCY_HEADER} is too long."}
        )
    return key


def _validated(serializer: serializers.Serializer) -> serializers.Serializer:
    if not serializer.is_valid():
        # Same {code, detail} shape as domain errors, with the per-field messages.
        raise ValidationError(
            {
                "code": "invalid_input",
                "detail": _first_error(serializer.errors),
                "fields": serializer.errors,
            }
        )
    return serializer


def _first_error(errors: Any, path: str = "") -> str:
    """The first field message, prefixed with where it is (``lines.0.quantity: ...``)."""
    if isinstance(errors, dict):
        for field, nested in errors.items():
            # Errors about a whole object or list belong to the path that holds it.
            where = path if field == api_settings.NON_FIELD_ERRORS_KEY else str(field)
            found = _first_error(nested, f"{path}.{where}" if path and where != path else where)
            if found:
                return found
    elif isinstance(errors, list):
        for index, nested in enumerate(errors):
            if isinstance(nested, dict | list):
                found = _first_error(nested, f"{path}.{index}")
                if found:
                    return found
            elif nested:
                return f"{path}: {nested}" if path else str(nested)
    return ""


def _canonical(body: dict) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)


def _idempotent_replay(*, channel, external_id: str, key: str, body: dict) -> int | None:
    """The HTTP status first answered to this key for this order, or ``None`` if unseen.

    Raises ``OrderError`` (``idempotency_conflict``) when the key came with another body.
    """
    version = (
        OrderPayloadVersion.objects.filter(
            order__channel=channel,
            order__external_id=external_id,
            **{f"payload__{PAYLOAD_KEY_FIELD}": key},
        )
        .only("pk", "order_id", "payload")
        .first()
    )
    if version is None:
        return None
    sent = {k: v for k, v in version.payload.items() if k != PAYLOAD_KEY_FIELD}
    if _canonical(sent) != _canonical(body):
        raise OrderError(
            f"{IDEMPOTENCY_HEADER} {key!r} was already used with a different body.",
            code="idempotency_conflict",
        )
    first = not OrderPayloadVersion.objects.filter(
        order_id=version.order_id, pk__lt=version.pk
    ).exists()
    return status.HTTP_201_CREATED if first else status.HTTP_200_OK


def _conflict_aware_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError) and exc.code in STATE_CONFLICT_CODES:
        return Response({"code": exc.code, "detail": exc.message}, status=status.HTTP_409_CONFLICT)
    return domain_exception_handler(exc, context)


_IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=f"Client-chosen key (max {IDEMPOTENCY_KEY_MAX} chars): a retry with the same key "
    "and body returns the first answer and changes nothing; the same key with another body "
    "is refused with 409 idempotency_conflict.",
)


class OrderViewSet(viewsets.ReadOnlyModelViewSet):
    """Orders from every channel, newest first; webshops push orders, warehouses post parcels."""

    filterset_class = OrderFilterSet
    parser_classes = [JSONParser]
    ordering = ("-purchased_at", "-id")
    ordering_fields = ("purchased_at", "id")
    permission_by_action = {
        "list": "oms.view_order",
        "retrieve": "oms.view_order",
        "create": "oms.add_order",
        "shipments": "oms.ship_order",
    }

    def get_permissions(self) -> list[BasePermission]:
        return [HasPermission(self.permission_by_action.get(self.action, "oms.view_order"))()]

    def get_queryset(self) -> QuerySet[Order]:
        if self.action == "retrieve":
            return order_detail_queryset()
        if self.action == "list":
            return order_list().prefetch_related(
                Prefetch("lines", queryset=OrderLine.objects.select_related("sku"))
            )
        return order_list()

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return OrderDetailOutputSerializer if self.action == "retrieve" else OrderOutputSerializer

    def get_exception_handler(self) -> Callable[[Exception, dict], Response | None]:
        return _conflict_aware_handler

    @extend_schema(
        summary="Push an order (webshop)",
        request=OrderCreateInputSerializer,
        parameters=[_IDEMPOTENCY_PARAMETER],
        responses={
            201: OpenApiResponse(OrderDetailOutputSerializer, description="A new order."),
            200: OpenApiResponse(
                OrderDetailOutputSerializer,
                description="A known order: updated, unchanged, or a replay of a key.",
            ),
            400: OpenApiResponse(ErrorOutputSerializer, description="Invalid order."),
            409: OpenApiResponse(ErrorOutputSerializer, description="Key used with another body."),
        },
    )
    def create(self, request: Request) -> Response:
        """Create or update the order (channel, external_id) and reserve its stock.

        An order that cannot be allocated (unknown SKU, no stock, no address) is still
        created, on hold with the reason.
        """
        serializer = _validated(OrderCreateInputSerializer(data=request.data))
        data = serializer.validated_data
        key = _idempotency_key(request)
        body = dict(request.data)
        if key:
            replayed = _idempotent_replay(
                channel=data["channel"], external_id=data["external_id"], key=key, body=body
            )
            if replayed is not None:
                order = order_detail_queryset().get(
                    channel=data["channel"], external_id=data["external_id"]
                )
                return Response(OrderDetailOutputSerializer(order).data, status=replayed)
            body[PAYLOAD_KEY_FIELD] = key
        result = order_ingest(
            channel=data["channel"], record=serializer.record(raw=body), actor=request.user
        )
        order = order_detail_queryset().get(pk=result.order.pk)
        return Response(
            OrderDetailOutputSerializer(order).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Record a shipment (WMS/3PL)",
        request=ShipmentCreateInputSerializer,
        parameters=[_IDEMPOTENCY_PARAMETER],
        responses={
            201: OpenApiResponse(ShipmentCreatedOutputSerializer, description="Recorded."),
            200: OpenApiResponse(
                ShipmentCreatedOutputSerializer,
                description="Already recorded (same key, or same carrier and tracking number).",
            ),
            400: OpenApiResponse(
                ErrorOutputSerializer, description="Unknown carrier, bad tracking, bad lines."
            ),
            409: OpenApiResponse(
                ErrorOutputSerializer,
                description="The order cannot ship now, or the key was used for another parcel.",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def shipments(self, request: Request, pk: str | None = None) -> Response:
        """Record a parcel: consume its reserved stock, move the order on, confirm it to the
        channel after commit. Without ``lines`` everything still open ships."""
        order = self.get_object()
        serializer = _validated(ShipmentCreateInputSerializer(data=request.data))
        data = serializer.validated_data
        key = _idempotency_key(request)
        # Only decides 200 vs 201 (and refuses a reused key); shipment_create itself
        # guarantees that a key or a tracking number is recorded once.
        earlier = _earlier_shipment(order, key, data["carrier_code"], data["tracking_number"])
        shipment = shipment_create(
            order=order,
            carrier_code=data["carrier_code"],
            carrier_name=data["carrier_name"],
            tracking_number=data["tracking_number"],
            service=data["service"],
            shipped_at=data.get("shipped_at"),
            lines=serializer.line_quantities(order=order),
            actor=request.user,
            idempotency_key=key,
            source="api",
        )
        shipment = (
            Shipment.objects.select_related("order").prefetch_related("lines").get(pk=shipment.pk)
        )
        return Response(
            ShipmentCreatedOutputSerializer(shipment).data,
            status=status.HTTP_200_OK if earlier else status.HTTP_201_CREATED,
        )


def _earlier_shipment(order: Order, key: str, carrier_code: str, tracking_number: str) -> bool:
    """Whether this parcel was recorded before; refuses a key reused for another parcel."""
    shipments = Shipment.objects.filter(order=order)
    if key:
        keyed = shipments.filter(idempotency_key=key).first()
        if keyed is not None:
            if keyed.tracking_number != _tracking(tracking_number):
                raise OrderError(
                    f"{IDEMPOTENCY_HEADER} {key!r} was already used for parcel "
                    f"{keyed.carrier_code} {keyed.tracking_number}.",
                    code="idempotency_conflict",
                )
            return True
    return shipments.filter(
        carrier_code__iexact=carrier_code.strip(), tracking_number=_tracking(tracking_number)
    ).exists()


def _tracking(number: str) -> str:
    # The same normalisation shipment_create uses to spot a repeated tracking number.
    return "".join(ch for ch in number.upper() if ch.isalnum())
