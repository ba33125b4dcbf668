"""Orders API serializers: ``<Model>OutputSerializer`` for reads, plain input serializers for
the commands (types and shapes only; ``order_ingest`` and ``shipment_create`` own every
domain rule)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rest_framework import serializers

from oms.exceptions import OrderError
from oms.models import (
    FulfillmentModel,
    Order,
    OrderEvent,
    OrderLine,
    SalesChannel,
    Shipment,
    ShipmentLine,
)
from oms.records import AddressRecord, ChannelOrderStatus, OrderLineRecord, OrderRecord

MONEY = {"max_digits": 12, "decimal_places": 2}

# -- output -----------------------------------------------------------------------------------


class OrderLineOutputSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(
        source="sku.code", read_only=True, allow_null=True, help_text="Our SKU; null if unmapped."
    )
    quantity_open = serializers.IntegerField(read_only=True)

    class Meta:
        model = OrderLine
        fields = [
            "id",
            "channel_line_id",
            "seller_sku",
            "sku",
            "title",
            "quantity",
            "quantity_shipped",
            "quantity_cancelled",
            "quantity_open",
            "unit_price",
        ]


class OrderOutputSerializer(serializers.ModelSerializer):
    """An order with its lines, as listed."""

    channel = serializers.CharField(source="channel.code", read_only=True)
    warehouse = serializers.CharField(source="warehouse.code", read_only=True, allow_null=True)
    lines = OrderLineOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "channel",
            "external_id",
            "status",
            "fulfillment_model",
            "hold_reason",
            "hold_detail",
            "cancel_reason",
            "warehouse",
            "purchased_at",
            "ship_by",
            "pack_by",
            "shipped_at",
            "delivered_at",
            "cancelled_at",
            "is_prime",
            "oversold",
            "currency",
            "total",
            "shipping_total",
            "tax_total",
            "lines",
            "updated_at",
        ]


class ShipmentLineOutputSerializer(serializers.ModelSerializer):
    line_id = serializers.IntegerField(source="order_line_id", read_only=True)

    class Meta:
        model = ShipmentLine
        fields = ["line_id", "quantity"]


class ShipmentOutputSerializer(serializers.ModelSerializer):
    lines = ShipmentLineOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Shipment
        fields = [
            "id",
            "carrier_code",
            "carrier_name",
            "service",
            "tracking_number",
            "shipped_at",
            "confirmation_status",
            "source",
            "lines",
        ]


class ShipmentCreatedOutputSerializer(ShipmentOutputSerializer):
    """A recorded shipment and where it left its order."""

    order = serializers.IntegerField(source="order_id", read_only=True)
    order_status = serializers.CharField(source="order.status", read_only=True)

    class Meta(ShipmentOutputSerializer.Meta):
        fields = ["order", "order_status", *ShipmentOutputSerializer.Meta.fields]


class OrderEventOutputSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = OrderEvent
        fields = ["kind", "from_status", "to_status", "message", "data", "actor", "created_at"]


class AddressOutputSerializer(serializers.Serializer):
    """The ship-to address (the same fields the create input takes)."""

    name = serializers.CharField(source="ship_name")
    line1 = serializers.CharField(source="ship_line1")
    line2 = serializers.CharField(source="ship_line2")
    line3 = serializers.CharField(source="ship_line3")
    city = serializers.CharField(source="ship_city")
    region = serializers.CharField(source="ship_region")
    postal_code = serializers.CharField(source="ship_postal_code")
    country_code = serializers.CharField(source="ship_country")
    phone = serializers.CharField(source="ship_phone")


class OrderDetailOutputSerializer(OrderOutputSerializer):
    """An order with its ship-to, lines, shipments (with their lines) and timeline."""

    ship_to = AddressOutputSerializer(source="*", read_only=True)
    shipments = ShipmentOutputSerializer(many=True, read_only=True)
    events = OrderEventOutputSerializer(many=True, read_only=True)

    class Meta(OrderOutputSerializer.Meta):
        fields = [
            *OrderOutputSerializer.Meta.fields,
            "earliest_ship_at",
            "latest_ship_at",
            "latest_delivery_at",
            "payment_expires_at",
            "deadline_rule",
            "service_level",
            "buyer_name",
            "buyer_email",
            "ship_to",
            "shipments",
            "events",
        ]


# -- input ------------------------------------------------------------------------------------


class AddressInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    line1 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    line3 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    region = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    postal_code = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    country_code = serializers.RegexField(
        r"^[A-Za-z]{2}$",
        required=False,
        allow_blank=True,
        default="",
        help_text="ISO 3166-1 alpha-2.",
        error_messages={"invalid": "Use a two-letter ISO country code."},
    )
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")


class BuyerInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")


class OrderLineInputSerializer(serializers.Serializer):
    line_id = serializers.CharField(max_length=100, help_text="The line's id in the webshop.")
    sku = serializers.CharField(max_length=100, help_text="The SKU as the webshop knows it.")
    quantity = serializers.IntegerField(min_value=1)
    unit_price = serializers.DecimalField(**MONEY, min_value=0, required=False, default="0")
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


CHANNEL_STATUSES = [
    ChannelOrderStatus.PENDING,
    ChannelOrderStatus.UNSHIPPED,
    ChannelOrderStatus.PARTIALLY_SHIPPED,
    ChannelOrderStatus.SHIPPED,
    ChannelOrderStatus.DELIVERED,
    ChannelOrderStatus.CANCELLED,
]


class OrderCreateInputSerializer(serializers.Serializer):
    """An order pushed by a webshop: the same order (channel, external id) sent again is an
    update, or nothing when the payload is unchanged."""

    channel = serializers.SlugRelatedField(
        slug_field="code",
        queryset=SalesChannel.objects.all(),
        help_text="Code of the sales channel the order belongs to.",
        error_messages={"does_not_exist": "Unknown sales channel {value!r}."},
    )
    external_id = serializers.CharField(max_length=100, help_text="The webshop's order id.")
    status = serializers.ChoiceField(
        choices=CHANNEL_STATUSES,
        default=ChannelOrderStatus.UNSHIPPED,
        help_text="pending = not paid yet (stock is held for a while); unshipped = paid.",
    )
    fulfillment_model = serializers.ChoiceField(
        choices=FulfillmentModel.choices,
        required=False,
        help_text="Defaults to the channel's fulfillment model.",
    )
    purchased_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(
        required=False, help_text="When the webshop last changed the order; older pushes lose."
    )
    latest_ship_at = serializers.DateTimeField(required=False)
    latest_delivery_at = serializers.DateTimeField(required=False)
    is_prime = serializers.BooleanField(required=False, default=False)
    service_level = serializers.CharField(
        max_length=60, required=False, allow_blank=True, default=""
    )
    lines = OrderLineInputSerializer(many=True, allow_empty=False)
    ship_to = AddressInputSerializer(required=False, allow_null=True)
    buyer = BuyerInputSerializer(required=False)
    currency = serializers.RegexField(
        r"^[A-Z]{3}$",
        default="USD",
        help_text="ISO 4217 code.",
        error_messages={"invalid": "Use a three-letter ISO currency code in capitals."},
    )
    total = serializers.DecimalField(**MONEY, min_value=0, default="0")
    shipping_total = serializers.DecimalField(**MONEY, min_value=0, default="0")
    tax_total = serializers.DecimalField(**MONEY, min_value=0, default="0")

    def validate_channel(self, channel: SalesChannel) -> SalesChannel:
        if not channel.is_enabled:
            raise serializers.ValidationError(f"Sales channel {channel.code!r} is disabled.")
        return channel

    def validate_lines(self, lines: list[dict]) -> list[dict]:
        counts = Counter(line["line_id"] for line in lines)
        repeated = sorted(line_id for line_id, n in counts.items() if n > 1)
        if repeated:
            raise serializers.ValidationError(f"Line ids must be unique; repeated: {repeated}.")
        return lines

    def record(self, *, raw: dict[str, Any]) -> OrderRecord:
        """The validated order as the channel-neutral record ``order_ingest`` takes."""
        data = self.validated_data
        ship_to = data.get("ship_to")
        buyer = data.get("buyer") or {}
        return OrderRecord(
            channel_order_id=data["external_id"],
            status=data["status"],
            purchased_at=data["purchased_at"],
            updated_at=data.get("updated_at"),
            latest_ship_at=data.get("latest_ship_at"),
            latest_delivery_at=data.get("latest_delivery_at"),
            fulfillment_model=data.get("fulfillment_model")
            or data["channel"].default_fulfillment_model,
            is_prime=data["is_prime"],
            service_level=data["service_level"],
            buyer_name=buyer.get("name", ""),
            buyer_email=buyer.get("email", ""),
            ship_to=AddressRecord(**{**ship_to, "country_code": ship_to["country_code"].upper()})
            if ship_to
            else None,
            currency=data["currency"],
            total=data["total"],
            shipping_total=data["shipping_total"],
            tax_total=data["tax_total"],
            lines=tuple(
                OrderLineRecord(
                    channel_line_id=line["line_id"],
                    seller_sku=line["sku"],
                    quantity=line["quantity"],
                    unit_price=line["unit_price"],
                    title=line["title"],
                )
                for line in data["lines"]
            ),
            raw=raw,
        )


class ShipmentLineInputSerializer(serializers.Serializer):
    line_id = serializers.IntegerField(required=False, help_text="Our order line id.")
    channel_line_id = serializers.CharField(
        max_length=100, required=False, help_text="Or the channel's line id."
    )
    quantity = serializers.IntegerField(min_value=1)

    def validate(self, attrs: dict) -> dict:
        if ("line_id" in attrs) == ("channel_line_id" in attrs):
            raise serializers.ValidationError("Give either line_id or channel_line_id.")
        return attrs


class ShipmentCreateInputSerializer(serializers.Serializer):
    """A parcel that left the warehouse. Without ``lines`` it ships everything still open."""

    carrier_code = serializers.CharField(max_length=40, help_text="e.g. UPS, USPS, FEDEX, DHL.")
    carrier_name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", help_text="For OTHER."
    )
    tracking_number = serializers.CharField(max_length=60)
    service = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    shipped_at = serializers.DateTimeField(required=False, help_text="Defaults to now.")
    lines = ShipmentLineInputSerializer(many=True, required=False, allow_empty=False)

    def line_quantities(self, *, order: Order) -> dict[int, int] | None:
        """``{order line id: quantity}`` for ``shipment_create``; ``None`` ships all open.

        Raises ``OrderError`` (``invalid_shipment_lines``, the service's code for the same
        problem) for a line that is not on ``order`` or is given twice.
        """
        lines = self.validated_data.get("lines")
        if lines is None:
            return None
        by_channel_id = dict(order.lines.values_list("channel_line_id", "pk"))
        ours = set(by_channel_id.values())
        wanted: dict[int, int] = {}
        problems = []
        for line in lines:
            pk = line.get("line_id")
            if pk is None:
                pk = by_channel_id.get(line["channel_line_id"])
            if pk not in ours:
                ref = line.get("line_id", line.get("channel_line_id"))
                problems.append(f"line {ref!r} is not on this order")
            elif pk in wanted:
                problems.append(f"line {pk} is given twice")
            else:
                wanted[pk] = line["quantity"]
        if problems:
            raise OrderError(
                f"Cannot ship order {order.external_id}: {'; '.join(problems)}.",
                code="invalid_shipment_lines",
            )
        return wanted
