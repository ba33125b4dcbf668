"""Returns API: list and detail, return requests from a webshop, receipt and inspection for a
WMS.

Views only translate HTTP to service calls: validate input types, map SKUs and channel line
ids to our lines, call ``return_request_create``, ``return_receive`` or ``return_inspect``,
answer with the output serializer. Every refusal is ``{code, detail}``.
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from inventory.api.serializers import ErrorOutputSerializer
from inventory.api.views import IDEMPOTENCY_HEADER, HasPermission
from oms.api.exceptions import domain_exception_handler
from oms.api.views import (
    IDEMPOTENCY_KEY_MAX,
    _canonical,
    _first_error,
    _idempotency_key,
    _validated,
)
from oms.models import Order
from returns.exceptions import DomainError, ReturnError
from returns.models import Inspection, Refund, ReturnLine, ReturnRequest
from returns.services import (
    return_inspect,
    return_receive,
    return_refund_terms_set,
    return_request_authorize,
    return_request_create,
)

from .filters import ReturnRequestFilterSet
from .serializers import (
    ReturnAuthorizeInputSerializer,
    ReturnCreateInputSerializer,
    ReturnInspectInputSerializer,
    ReturnReceiveInputSerializer,
    ReturnRefundTermsInputSerializer,
    ReturnRequestDetailOutputSerializer,
    ReturnRequestOutputSerializer,
)

# Where the Idempotency-Key of a create without a channel return id is kept: in the payload
# stored with the return, so that a replay can be recognised by any process.
PAYLOAD_KEY_FIELD = "_idempotency_key"
# Refusals that are about the return's state, not the request: 409 rather than 400.
STATE_CONFLICT_CODES = {
    "returnless",
    "refund_exists",
    "refund_terms_closed",
    "shipping_refunded",
    "shipping_too_late",
}


def _exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError) and exc.code in STATE_CONFLICT_CODES:
        return Response({"code": exc.code, "detail": exc.message}, status=status.HTTP_409_CONFLICT)
    response = domain_exception_handler(exc, context)
    if response is None or not isinstance(response.data, dict) or "code" in response.data:
        return response
    # DRF's own refusals (401, 403, 404, 405, 415, bad JSON) carry a detail only, and a bad
    # filter value only its fields: give them the same {code, detail} shape as the rest.
    detail = response.data.get("detail")
    if detail is not None:
        response.data["code"] = getattr(detail, "code", None) or "error"
    elif isinstance(exc, ValidationError):
        response.data = {
            "code": "invalid_input",
            "detail": _first_error(response.data),
            "fields": response.data,
        }
    return response


def return_detail_queryset() -> QuerySet[ReturnRequest]:
    """Returns with everything the detail shows: lines with inspections, refunds, timeline."""
    return ReturnRequest.objects.select_related(
        "channel", "order", "decided_by_rule", "quarantine"
    ).prefetch_related(
        Prefetch(
            "lines",
            queryset=ReturnLine.objects.select_related("sku", "order_line")
            .prefetch_related(
                Prefetch(
                    "inspections",
                    queryset=Inspection.objects.select_related("restock_warehouse").order_by(
                        "inspected_at", "id"
                    ),
                )
            )
            .order_by("id"),
        ),
        Prefetch("refunds", queryset=Refund.objects.prefetch_related("lines").order_by("id")),
        "events",
    )


def _keyed_return(*, order: Order, key: str, body: dict) -> ReturnRequest | None:
    """The return first created under ``key`` for ``order``, or ``None``.

    Raises ``ReturnError`` (``idempotency_conflict``) when the key came with another body.
    """
    existing = ReturnRequest.objects.filter(
        order=order, **{f"raw_payload__{PAYLOAD_KEY_FIELD}": key}
    ).first()
    if existing is None:
        return None
    sent = {k: v for k, v in existing.raw_payload.items() if k != PAYLOAD_KEY_FIELD}
    if _canonical(sent) != _canonical(body):
        raise ReturnError(
            f"{IDEMPOTENCY_HEADER} {key!r} was already used with a different body.",
            code="idempotency_conflict",
        )
    return existing


def _detail(return_request: ReturnRequest, http_status: int) -> Response:
    return_request = return_detail_queryset().get(pk=return_request.pk)
    return Response(ReturnRequestDetailOutputSerializer(return_request).data, status=http_status)


def _idempotency_parameter(description: str) -> OpenApiParameter:
    return OpenApiParameter(
        IDEMPOTENCY_HEADER,
        str,
        location=OpenApiParameter.HEADER,
        required=False,
        description=f"Client-chosen key (max {IDEMPOTENCY_KEY_MAX} chars). {description}",
    )


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorOutputSerializer, description=description)


class ReturnRequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Returns by time left to answer (most urgent first), looked up by RMA. Webshops open
    returns; the warehouse's WMS receives and inspects them."""

    filterset_class = ReturnRequestFilterSet
    parser_classes = [JSONParser]
    lookup_field = "rma"
    lookup_value_regex = "[^/]+"
    ordering = ("respond_by", "id")
    ordering_fields = ("respond_by", "id")
    permission_by_action = {
        "list": "returns.view_returnrequest",
        "retrieve": "returns.view_returnrequest",
        "create": "returns.add_returnrequest",
        "receive": "returns.receive_return",
        "inspect": "returns.inspect_return",
        "authorize": "returns.decide_return",
        "refund_terms": "returns.decide_return",
    }

    def get_permissions(self) -> list[BasePermission]:
        perm = self.permission_by_action.get(self.action, "returns.view_returnrequest")
        return [HasPermission(perm)()]

    def get_queryset(self) -> QuerySet[ReturnRequest]:
        if self.action == "retrieve":
            return return_detail_queryset()
        base = ReturnRequest.objects.select_related("channel", "order", "decided_by_rule")
        if self.action == "list":
            lines = ReturnLine.objects.select_related("sku", "order_line").order_by("id")
            return base.prefetch_related(Prefetch("lines", queryset=lines))
        return base

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if self.action == "list":
            return ReturnRequestOutputSerializer
        return ReturnRequestDetailOutputSerializer

    def get_exception_handler(self):
        return _exception_handler

    @extend_schema(
        summary="Open a return (webshop)",
        request=ReturnCreateInputSerializer,
        parameters=[
            _idempotency_parameter(
                "Used when the body has no return_id: a retry with the same key and body returns "
                "the return first opened; the same key with another body is refused with 409."
            )
        ],
        responses={
            201: OpenApiResponse(ReturnRequestDetailOutputSerializer, description="Opened."),
            200: OpenApiResponse(
                ReturnRequestDetailOutputSerializer,
                description="Already open: the same return_id, or a replay of a key.",
            ),
            400: _error("Unknown channel or order, a line not on the order, more than shipped."),
            409: _error("Key used with another body."),
        },
    )
    def create(self, request: Request) -> Response:
        """Open a return for shipped units and answer it by the seller's rules (approved at
        once, refunded without a return, or left to staff within 48 hours)."""
        serializer = _validated(ReturnCreateInputSerializer(data=request.data))
        data = serializer.validated_data
        key = _idempotency_key(request)
        order = serializer.order()
        body = dict(request.data)
        if data["return_id"]:
            # Only decides 200 vs 201; return_request_create itself opens a return id once.
            existing = ReturnRequest.objects.filter(
                channel_id=order.channel_id, channel_return_id=data["return_id"]
            ).first()
            if existing is not None:
                return _detail(existing, status.HTTP_200_OK)
        elif key:
            existing = _keyed_return(order=order, key=key, body=body)
            if existing is not None:
                return _detail(existing, status.HTTP_200_OK)
            body[PAYLOAD_KEY_FIELD] = key
        return_request = return_request_create(
            order=order,
            lines=serializer.order_lines(order=order),
            reason_code=data["reason_code"],
            buyer_comment=data["comment"],
            requested_at=data.get("requested_at"),
            channel_return_id=data["return_id"],
            raw=body,
            actor=request.user,
        )
        return _detail(return_request, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Receive a returned parcel (WMS)",
        request=ReturnReceiveInputSerializer,
        parameters=[
            _idempotency_parameter(
                "A retry with the same key receives nothing more and answers 200."
            )
        ],
        responses={
            201: OpenApiResponse(
                ReturnRequestDetailOutputSerializer, description="Received into quarantine."
            ),
            200: OpenApiResponse(
                ReturnRequestDetailOutputSerializer, description="Replay of a key; no change."
            ),
            400: _error("A SKU not on the return, more units than expected."),
            409: _error("The return is not authorized, or was refunded without a return."),
        },
    )
    @action(detail=True, methods=["post"])
    def receive(self, request: Request, rma: str | None = None) -> Response:
        """Book returned units into the quarantine warehouse (never sellable before
        inspection) and queue the refund for them. Without ``lines`` everything still
        expected arrived."""
        return_request = self.get_object()
        serializer = _validated(ReturnReceiveInputSerializer(data=request.data))
        key = _idempotency_key(request)
        # Only decides 200 vs 201; return_receive itself guarantees a key applies once.
        replay = (
            bool(key)
            and return_request.events.filter(kind="received", data__idempotency_key=key).exists()
        )
        return_receive(
            return_request=return_request,
            lines=serializer.line_quantities(return_request=return_request),
            actor=request.user,
            idempotency_key=key,
        )
        return _detail(return_request, status.HTTP_200_OK if replay else status.HTTP_201_CREATED)

    @extend_schema(
        summary="Inspect received units (WMS)",
        request=ReturnInspectInputSerializer,
        parameters=[
            _idempotency_parameter("A retry with the same key grades nothing more and answers 200.")
        ],
        responses={
            201: OpenApiResponse(ReturnRequestDetailOutputSerializer, description="Graded."),
            200: OpenApiResponse(
                ReturnRequestDetailOutputSerializer, description="Replay of a key; no change."
            ),
            400: _error(
                "A SKU not on the return, more units than wait, no reason for a damaged or "
                "defective unit, or a restock warehouse that cannot sell."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def inspect(self, request: Request, rma: str | None = None) -> Response:
        """Grade received units: sellable ones move from quarantine into sellable stock,
        damaged or defective ones are written off or sent back to the supplier."""
        return_request = self.get_object()
        serializer = _validated(ReturnInspectInputSerializer(data=request.data))
        data = serializer.validated_data
        key = _idempotency_key(request)
        # return_inspect itself guarantees a key grades once (None for a replay).
        inspection = return_inspect(
            return_line=serializer.return_line(return_request=return_request),
            grade=data["grade"],
            quantity=data["quantity"],
            restock_warehouse=data["restock_warehouse"],
            disposition=data["disposition"],
            reason=data["reason"],
            actor=request.user,
            idempotency_key=key,
        )
        replay = inspection is None
        return _detail(return_request, status.HTTP_200_OK if replay else status.HTTP_201_CREATED)

    @extend_schema(
        summary="Approve a return, with its refund terms",
        request=ReturnAuthorizeInputSerializer,
        responses={
            200: OpenApiResponse(ReturnRequestDetailOutputSerializer, description="Approved."),
            400: _error("An amount above what was paid, or a SKU not on the return."),
            409: _error("The return is not waiting for an answer."),
        },
    )
    @action(detail=True, methods=["post"])
    def authorize(self, request: Request, rma: str | None = None) -> Response:
        """Approve a return waiting for an answer: with ``refund_shipping`` the order's
        shipping goes back with the first refund; ``lines`` set a partial refund per SKU
        (never above what was paid for those units); ``returnless`` refunds at once."""
        return_request = self.get_object()
        serializer = _validated(ReturnAuthorizeInputSerializer(data=request.data))
        data = serializer.validated_data
        return_request_authorize(
            return_request=return_request,
            actor=request.user,
            returnless=data["returnless"],
            refund_shipping=data["refund_shipping"],
            line_amounts=serializer.line_amounts(return_request=return_request),
            note=data["note"],
        )
        return _detail(return_request, status.HTTP_200_OK)

    @extend_schema(
        summary="Change the refund terms of an approved return",
        request=ReturnRefundTermsInputSerializer,
        responses={
            200: OpenApiResponse(ReturnRequestDetailOutputSerializer, description="Changed."),
            400: _error("An amount above what was paid or below what already went back."),
            409: _error("The return is not approved and open, or shipping went back already."),
        },
    )
    @action(detail=True, methods=["post"], url_path="refund-terms")
    def refund_terms(self, request: Request, rma: str | None = None) -> Response:
        """Refund shipping (with the next refund) and partial amounts per SKU for units not
        refunded yet; setting the same terms again changes nothing."""
        return_request = self.get_object()
        serializer = _validated(ReturnRefundTermsInputSerializer(data=request.data))
        return_refund_terms_set(
            return_request=return_request,
            refund_shipping=serializer.validated_data["refund_shipping"],
            line_amounts=serializer.line_amounts(return_request=return_request),
            actor=request.user,
        )
        return _detail(return_request, status.HTTP_200_OK)
