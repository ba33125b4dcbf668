"""Returns API serializers: ``<Model>OutputSerializer`` for reads, plain input serializers for
the commands (types and shapes, and mapping SKUs and channel line ids to our lines; the
return services own every domain rule)."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from inventory.models import Warehouse
from oms.models import Order, OrderLine, SalesChannel
from returns.exceptions import ReturnError
from returns.models import (
    Inspection,
    Refund,
    RefundLine,
    ReturnEvent,
    ReturnLine,
    ReturnRequest,
    ReturnStatus,
)

# -- output -----------------------------------------------------------------------------------


class InspectionOutputSerializer(serializers.ModelSerializer):
    restock_warehouse = serializers.CharField(
        source="restock_warehouse.code", read_only=True, allow_null=True
    )

    class Meta:
        model = Inspection
        fields = ["grade", "disposition", "quantity", "reason", "restock_warehouse", "inspected_at"]


class ReturnLineOutputSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(
        source="sku.code", read_only=True, allow_null=True, help_text="Our SKU; null if unmapped."
    )
    seller_sku = serializers.CharField(source="order_line.seller_sku", read_only=True)
    channel_line_id = serializers.CharField(source="order_line.channel_line_id", read_only=True)

    class Meta:
        model = ReturnLine
        fields = [
            "id",
            "channel_line_id",
            "seller_sku",
            "sku",
            "quantity",
            "quantity_received",
            "quantity_inspected",
            "quantity_refunded",
            "quantity_not_returned",
            "unit_price",
            "refund_amount",
        ]


class ReturnLineDetailOutputSerializer(ReturnLineOutputSerializer):
    inspections = InspectionOutputSerializer(many=True, read_only=True)

    class Meta(ReturnLineOutputSerializer.Meta):
        fields = [*ReturnLineOutputSerializer.Meta.fields, "inspections"]


class RefundLineOutputSerializer(serializers.ModelSerializer):
    line_id = serializers.IntegerField(source="return_line_id", read_only=True)

    class Meta:
        model = RefundLine
        fields = ["line_id", "quantity", "amount"]


class RefundOutputSerializer(serializers.ModelSerializer):
    lines = RefundLineOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Refund
        fields = [
            "refund_key",
            "state",
            "currency",
            "amount",
            "shipping_amount",
            "channel_refund_id",
            "attempts",
            "error",
            "created_at",
            "sent_at",
            "lines",
        ]


class ReturnEventOutputSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = ReturnEvent
        fields = ["kind", "from_status", "to_status", "message", "data", "actor", "created_at"]


class ReturnRequestOutputSerializer(serializers.ModelSerializer):
    """A return with its lines, as listed."""

    channel = serializers.CharField(source="channel.code", read_only=True)
    order = serializers.CharField(
        source="order.external_id", read_only=True, help_text="The channel order id."
    )
    return_id = serializers.CharField(
        source="channel_return_id", read_only=True, help_text="The channel's return id, if any."
    )
    overdue = serializers.SerializerMethodField(
        help_text="Still unanswered after its respond-by time."
    )
    decided_by_rule = serializers.CharField(
        source="decided_by_rule.name", read_only=True, allow_null=True
    )
    lines = ReturnLineOutputSerializer(many=True, read_only=True)

    class Meta:
        model = ReturnRequest
        fields = [
            "rma",
            "channel",
            "order",
            "return_id",
            "fulfillment_model",
            "status",
            "reason_code",
            "buyer_comment",
            "requested_at",
            "respond_by",
            "responded_at",
            "overdue",
            "decided_by_rule",
            "returnless",
            "refund_shipping",
            "received_at",
            "closed_at",
            "lines",
        ]

    def get_overdue(self, obj: ReturnRequest) -> bool:
        return obj.status == ReturnStatus.REQUESTED and obj.respond_by <= timezone.now()


class ReturnRequestDetailOutputSerializer(ReturnRequestOutputSerializer):
    """A return with its lines and their inspections, refunds and timeline."""

    quarantine = serializers.CharField(source="quarantine.code", read_only=True, allow_null=True)
    lines = ReturnLineDetailOutputSerializer(many=True, read_only=True)
    refunds = RefundOutputSerializer(many=True, read_only=True)
    events = ReturnEventOutputSerializer(many=True, read_only=True)

    class Meta(ReturnRequestOutputSerializer.Meta):
        fields = [
            *ReturnRequestOutputSerializer.Meta.fields,
            "decision_note",
            "quarantine",
            "refunds",
            "events",
        ]


# -- input ------------------------------------------------------------------------------------


class ReturnCreateLineInputSerializer(serializers.Serializer):
    channel_line_id = serializers.CharField(
        max_length=100, required=False, help_text="The order line's id in the channel."
    )
    sku = serializers.CharField(
        max_length=100, required=False, help_text="Or the SKU as the channel knows it (or ours)."
    )
    quantity = serializers.IntegerField(min_value=1)

    def validate(self, attrs: dict) -> dict:
        if ("channel_line_id" in attrs) == ("sku" in attrs):
            raise serializers.ValidationError("Give either channel_line_id or sku.")
        return attrs


class ReturnCreateInputSerializer(serializers.Serializer):
    """A buyer's return request sent by a webshop. The same ``return_id`` sent again returns
    the return already opened."""

    channel = serializers.SlugRelatedField(
        slug_field="code",
        queryset=SalesChannel.objects.all(),
        help_text="Code of the sales channel the order belongs to.",
        error_messages={"does_not_exist": "Unknown sales channel {value!r}."},
    )
    order_external_id = serializers.CharField(max_length=100, help_text="The channel order id.")
    lines = ReturnCreateLineInputSerializer(many=True, allow_empty=False)
    reason_code = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")
    comment = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", help_text="The buyer's."
    )
    return_id = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="The webshop's id for this return: sending it again changes nothing.",
    )
    requested_at = serializers.DateTimeField(
        required=False, help_text="When the buyer asked; defaults to now (starts the 48 hours)."
    )

    def order(self) -> Order:
        """The order the return is for; raises ``ReturnError`` (``unknown_order``)."""
        data = self.validated_data
        order = Order.objects.filter(
            channel=data["channel"], external_id=data["order_external_id"]
        ).first()
        if order is None:
            raise ReturnError(
                f"No order {data['order_external_id']!r} on channel {data['channel'].code}.",
                code="unknown_order",
            )
        return order

    def order_lines(self, *, order: Order) -> list[tuple[OrderLine, int]]:
        """``[(order line, quantity)]`` for ``return_request_create``.

        Raises ``ReturnError`` (``invalid_return_lines``, the service's code for the same
        problem) for a line or SKU that is not on the order.
        """
        lines = list(order.lines.select_related("sku"))
        by_id = {line.channel_line_id: line for line in lines}
        problems, wanted = [], []
        for item in self.validated_data["lines"]:
            if "channel_line_id" in item:
                line = by_id.get(item["channel_line_id"])
                ref = f"line {item['channel_line_id']!r}"
            else:
                sku = item["sku"]
                line = next(
                    (x for x in lines if sku in (x.seller_sku, x.sku.code if x.sku else None)),
                    None,
                )
                ref = f"SKU {sku!r}"
            if line is None:
                problems.append(f"{ref} is not on order {order.external_id}")
            else:
                wanted.append((line, item["quantity"]))
        if problems:
            raise ReturnError(
                f"Cannot open a return for {order.external_id}: {'; '.join(problems)}.",
                code="invalid_return_lines",
            )
        return wanted


class ReturnReceiveLineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100, help_text="Our SKU code (or the channel's SKU).")
    quantity = serializers.IntegerField(min_value=1)


class ReturnReceiveInputSerializer(serializers.Serializer):
    """A returned parcel at the dock. Without ``lines`` everything still expected arrived."""

    lines = ReturnReceiveLineInputSerializer(many=True, required=False, allow_empty=False)

    def line_quantities(self, *, return_request: ReturnRequest) -> dict[int, int] | None:
        """``{return line id: units}`` for ``return_receive``; ``None`` receives everything.

        A SKU on several lines fills them in order; units beyond what is due stay on the
        last one for the service to refuse. Raises ``ReturnError`` (``invalid_receipt``) for
        a SKU that is not on the return.
        """
        items = self.validated_data.get("lines")
        if items is None:
            return None
        lines = list(return_request.lines.select_related("sku", "order_line").order_by("id"))
        wanted: dict[int, int] = {}
        problems = []
        for item in items:
            matching = [line for line in lines if item["sku"] in _line_skus(line)]
            if not matching:
                problems.append(f"{item['sku']!r} is not on {return_request.rma}")
                continue
            left = item["quantity"]
            for line in matching:
                room = line.quantity_due - wanted.get(line.pk, 0)
                take = min(left, max(room, 0))
                if take:
                    wanted[line.pk] = wanted.get(line.pk, 0) + take
                    left -= take
            if left:
                last = matching[-1].pk
                wanted[last] = wanted.get(last, 0) + left
        if problems:
            raise ReturnError(
                f"Cannot receive {return_request.rma}: {'; '.join(problems)}.",
                code="invalid_receipt",
            )
        return wanted


class ReturnRefundLineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100, help_text="Our SKU code (or the channel's SKU).")
    refund_amount = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        help_text="Money back for all the line's units; at most what was paid for them.",
    )


class ReturnRefundTermsInputSerializer(serializers.Serializer):
    """What the refunds of a return give back: shipping or not, and a partial amount per
    line (lines not named get what was paid)."""

    refund_shipping = serializers.BooleanField(required=False, default=None, allow_null=True)
    lines = ReturnRefundLineInputSerializer(many=True, required=False, default=list)

    def line_amounts(self, *, return_request: ReturnRequest) -> dict[int, object]:
        """``{return line id: amount}``; raises ``ReturnError`` (``invalid_refund_amount``)
        for a SKU not on the return or on several of its lines."""
        lines = list(return_request.lines.select_related("sku", "order_line").order_by("id"))
        amounts: dict[int, object] = {}
        problems = []
        for item in self.validated_data.get("lines") or []:
            matching = [line for line in lines if item["sku"] in _line_skus(line)]
            if len(matching) != 1:
                problems.append(
                    f"{item['sku']!r} is "
                    + ("not on" if not matching else "on several lines of")
                    + f" {return_request.rma}"
                )
                continue
            amounts[matching[0].pk] = item["refund_amount"]
        if problems:
            raise ReturnError(
                f"Cannot set the refund of {return_request.rma}: {'; '.join(problems)}.",
                code="invalid_refund_amount",
            )
        return amounts


class ReturnAuthorizeInputSerializer(ReturnRefundTermsInputSerializer):
    """Approve a return: refunded without a return or not, with shipping or not, and a
    partial amount per line."""

    refund_shipping = serializers.BooleanField(required=False, default=False)
    returnless = serializers.BooleanField(required=False, default=False)
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class ReturnInspectInputSerializer(serializers.Serializer):
    """Grade received units of one SKU. Sellable units are restocked (into the order's
    warehouse unless ``restock_warehouse`` says otherwise); damaged and defective units need
    a ``reason`` and are written off or sent back to the supplier."""

    sku = serializers.CharField(max_length=100, help_text="Our SKU code (or the channel's SKU).")
    grade = serializers.ChoiceField(choices=Inspection.Grade.choices)
    quantity = serializers.IntegerField(min_value=1, default=1)
    disposition = serializers.ChoiceField(
        choices=[
            (value, label)
            for value, label in Inspection.Disposition.choices
            if value != Inspection.Disposition.RESTOCK
        ],
        required=False,
        allow_blank=True,
        default="",
        help_text="For damaged or defective units; defaults to write_off.",
    )
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    restock_warehouse = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Warehouse.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Warehouse code for sellable units; defaults to the order's warehouse.",
        error_messages={"does_not_exist": "Unknown warehouse {value!r}."},
    )

    def return_line(self, *, return_request: ReturnRequest) -> ReturnLine:
        """The line of ``sku`` with units waiting for inspection (the first, when the SKU is
        on several lines); raises ``ReturnError`` (``invalid_inspection``)."""
        sku = self.validated_data["sku"]
        lines = [
            line
            for line in return_request.lines.select_related("sku", "order_line").order_by("id")
            if sku in _line_skus(line)
        ]
        if not lines:
            raise ReturnError(f"{sku!r} is not on {return_request.rma}.", code="invalid_inspection")
        waiting = [line for line in lines if line.quantity_received > line.quantity_inspected]
        return (waiting or lines)[0]


def _line_skus(line: ReturnLine) -> set[str]:
    return {line.order_line.seller_sku, *([line.sku.code] if line.sku else [])}
