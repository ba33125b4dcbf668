"""The order domain: sales channels, orders and their lines, shipments, events and alerts.

Statuses change only through ``oms.services.orders.order_transition``, which checks
``TRANSITIONS`` and writes an ``OrderEvent``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from inventory.models import SKU, Warehouse

from .records import FulfillmentModel as FM

MONEY = {"max_digits": 12, "decimal_places": 2}


class FulfillmentModel(models.TextChoices):
    FBA = FM.FBA, "FBA (Amazon ships)"
    FBM = FM.FBM, "FBM (merchant ships)"
    SFP = FM.SFP, "Seller Fulfilled Prime"


class SalesChannel(models.Model):
    """A place orders come from, as the order domain sees it (connection details live in
    ``channels_app``)."""

    class Kind(models.TextChoices):
        AMAZON = "amazon", "Amazon"
        SHOPIFY = "shopify", "Shopify"
        EBAY = "ebay", "eBay"
        WALMART = "walmart", "Walmart"
        WEBSHOP = "webshop", "Webshop (REST API)"

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.WEBSHOP)
    marketplace = models.CharField(max_length=40, blank=True, help_text="e.g. ATVPDKIKX0DER")
    default_fulfillment_model = models.CharField(
        max_length=3, choices=FulfillmentModel.choices, default=FulfillmentModel.FBM
    )
    handling_days = models.PositiveSmallIntegerField(
        default=1, help_text="Business days to ship when the channel gives no ship-by date."
    )
    allow_split_shipments = models.BooleanField(
        default=False, help_text="Allow one order to ship from several warehouses."
    )
    fba_warehouse = models.ForeignKey(
        Warehouse,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"kind": Warehouse.Kind.FBA},
        help_text="Where this channel's FBA stock is held.",
    )
    is_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name or self.code


class RoutingRule(models.Model):
    """Warehouses that fulfil a channel's FBM/SFP orders, tried in priority order."""

    channel = models.ForeignKey(SalesChannel, on_delete=models.CASCADE, related_name="routing")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE, related_name="+")
    priority = models.PositiveSmallIntegerField(default=10, help_text="Lower is tried first.")

    class Meta:
        ordering = ["channel", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "warehouse"], name="routing_once")
        ]

    def __str__(self) -> str:
        return f"{self.channel} -> {self.warehouse} ({self.priority})"


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending payment"
    AWAITING_FULFILLMENT = "awaiting", "Awaiting fulfillment"
    ALLOCATED = "allocated", "Allocated"
    RELEASED = "released", "Released to warehouse"
    PICKED = "picked", "Picked"
    PACKED = "packed", "Packed"
    PARTIALLY_SHIPPED = "partially_shipped", "Partially shipped"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"
    ON_HOLD = "on_hold", "On hold"


S = OrderStatus
TRANSITIONS: dict[str, set[str]] = {
    S.PENDING: {S.AWAITING_FULFILLMENT, S.ALLOCATED, S.CANCELLED, S.ON_HOLD},
    S.AWAITING_FULFILLMENT: {S.ALLOCATED, S.CANCELLED, S.ON_HOLD, S.SHIPPED},
    S.ALLOCATED: {
        S.RELEASED,
        S.AWAITING_FULFILLMENT,
        S.PARTIALLY_SHIPPED,
        S.SHIPPED,
        S.CANCELLED,
        S.ON_HOLD,
    },
    S.RELEASED: {S.PICKED, S.PACKED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.CANCELLED, S.ON_HOLD},
    S.PICKED: {S.PACKED, S.PARTIALLY_SHIPPED, S.SHIPPED, S.CANCELLED, S.ON_HOLD},
    S.PACKED: {S.PARTIALLY_SHIPPED, S.SHIPPED, S.CANCELLED, S.ON_HOLD},
    S.PARTIALLY_SHIPPED: {S.SHIPPED, S.CANCELLED, S.ON_HOLD},
    S.SHIPPED: {S.DELIVERED},
    S.DELIVERED: set(),
    # Only for a warehouse that reports it shipped an order we cancelled: staff must act.
    S.CANCELLED: {S.ON_HOLD},
    S.ON_HOLD: {
        S.PENDING,
        S.AWAITING_FULFILLMENT,
        S.ALLOCATED,
        S.RELEASED,
        S.PICKED,
        S.PACKED,
        S.PARTIALLY_SHIPPED,
        S.CANCELLED,
    },
}
OPEN_STATUSES = [
    S.PENDING,
    S.AWAITING_FULFILLMENT,
    S.ALLOCATED,
    S.RELEASED,
    S.PICKED,
    S.PACKED,
    S.PARTIALLY_SHIPPED,
    S.ON_HOLD,
]
TO_SHIP_STATUSES = [S.ALLOCATED, S.RELEASED, S.PICKED, S.PACKED, S.PARTIALLY_SHIPPED]


class HoldReason(models.TextChoices):
    UNKNOWN_SKU = "unknown_sku", "Unknown SKU: map it to one of ours"
    MISSING_ADDRESS = "missing_address", "Missing or incomplete ship-to address"
    INSUFFICIENT_STOCK = "insufficient_stock", "Insufficient stock: backorder or reallocate"
    ADDRESS_CHANGED = "address_changed", "Address changed after release to the warehouse"
    ALREADY_SHIPPED = "already_shipped", "Warehouse reports it already shipped"
    MANUAL = "manual", "Held by staff"


class CancelReason(models.TextChoices):
    BUYER_REQUEST = "buyer_request", "Buyer request"
    OUT_OF_STOCK = "out_of_stock", "Out of stock"
    ADDRESS = "address", "Undeliverable address"
    PAYMENT = "payment", "Payment not completed"
    CHANNEL = "channel", "Cancelled on the channel"
    OTHER = "other", "Other"


class Order(models.Model):
    channel = models.ForeignKey(SalesChannel, on_delete=models.PROTECT, related_name="orders")
    external_id = models.CharField("channel order id", max_length=100)
    fulfillment_model = models.CharField(
        max_length=3, choices=FulfillmentModel.choices, default=FulfillmentModel.FBM
    )
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=S.PENDING)
    status_before_hold = models.CharField(max_length=20, choices=OrderStatus.choices, blank=True)
    hold_reason = models.CharField(max_length=24, choices=HoldReason.choices, blank=True)
    hold_detail = models.CharField(max_length=500, blank=True)
    cancel_reason = models.CharField(max_length=20, choices=CancelReason.choices, blank=True)
    warehouse = models.ForeignKey(
        Warehouse, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )

    purchased_at = models.DateTimeField()
    channel_updated_at = models.DateTimeField(null=True, blank=True)
    earliest_ship_at = models.DateTimeField(null=True, blank=True)
    latest_ship_at = models.DateTimeField("channel latest ship date", null=True, blank=True)
    latest_delivery_at = models.DateTimeField(null=True, blank=True)
    ship_by = models.DateTimeField(null=True, blank=True)
    pack_by = models.DateTimeField(null=True, blank=True)
    deadline_rule = models.CharField(max_length=20, blank=True)
    payment_expires_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    is_prime = models.BooleanField(default=False)
    service_level = models.CharField(max_length=60, blank=True)
    buyer_name = models.CharField(max_length=200, blank=True)
    buyer_email = models.CharField(max_length=254, blank=True)
    ship_name = models.CharField(max_length=200, blank=True)
    ship_line1 = models.CharField(max_length=200, blank=True)
    ship_line2 = models.CharField(max_length=200, blank=True)
    ship_line3 = models.CharField(max_length=200, blank=True)
    ship_city = models.CharField(max_length=100, blank=True)
    ship_region = models.CharField(max_length=100, blank=True)
    ship_postal_code = models.CharField(max_length=20, blank=True)
    ship_country = models.CharField(max_length=2, blank=True)
    ship_phone = models.CharField(max_length=40, blank=True)

    currency = models.CharField(max_length=3, default="USD")
    total = models.DecimalField(**MONEY, default=0)
    shipping_total = models.DecimalField(**MONEY, default=0)
    tax_total = models.DecimalField(**MONEY, default=0)

    raw_payload = models.JSONField(default=dict, blank=True)
    payload_hash = models.CharField(max_length=64, blank=True)
    oversold = models.BooleanField(
        default=False, help_text="Arrived when the stock it needed was already gone."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-purchased_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], name="order_once_per_channel"
            )
        ]
        indexes = [
            models.Index(fields=["-purchased_at", "-id"], name="order_recent_idx"),
            models.Index(fields=["status", "-purchased_at"], name="order_status_idx"),
            models.Index(fields=["channel", "-purchased_at"], name="order_channel_idx"),
            models.Index(
                fields=["external_id"], opclasses=["varchar_pattern_ops"], name="order_external_idx"
            ),
            models.Index(Upper("buyer_name"), name="order_buyer_name_ci_idx"),
            models.Index(Upper("buyer_email"), name="order_buyer_email_ci_idx"),
            models.Index(fields=["fulfillment_model", "-purchased_at"], name="order_model_idx"),
            models.Index(fields=["ship_by"], name="order_ship_by_idx"),
            models.Index(
                fields=["pack_by"],
                condition=Q(status__in=["allocated", "released", "picked", "packed"]),
                name="order_open_pack_by_idx",
            ),
            models.Index(
                fields=["hold_reason"], condition=~Q(hold_reason=""), name="order_on_hold_idx"
            ),
            models.Index(
                fields=["payment_expires_at"],
                condition=Q(status="pending"),
                name="order_pending_expiry_idx",
            ),
        ]
        permissions = [
            ("allocate_order", "Can allocate and release orders"),
            ("ship_order", "Can record shipments"),
            ("cancel_order", "Can cancel orders"),
            ("hold_order", "Can hold and release holds"),
            ("export_orders", "Can export order reports"),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.external_id}"

    @property
    def reservation_reference(self) -> str:
        return f"order:{self.pk}"

    @property
    def has_complete_address(self) -> bool:
        return bool(
            self.ship_line1 and self.ship_city and self.ship_postal_code and self.ship_country
        )


class OrderPayloadVersion(models.Model):
    """Every distinct payload a channel sent for an order, kept forever."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payload_versions")
    payload_hash = models.CharField(max_length=64)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "payload_hash"], name="payload_version_once")
        ]

    def __str__(self) -> str:
        return f"{self.order_id} @ {self.received_at:%Y-%m-%d %H:%M:%S}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(
        SKU, null=True, blank=True, on_delete=models.PROTECT, related_name="order_lines"
    )
    seller_sku = models.CharField(max_length=100, help_text="The SKU as the channel sent it.")
    channel_line_id = models.CharField(max_length=100)
    title = models.CharField(max_length=300, blank=True)
    quantity = models.PositiveIntegerField()
    quantity_shipped = models.PositiveIntegerField(default=0)
    quantity_cancelled = models.PositiveIntegerField(default=0)
    unit_price = models.DecimalField(**MONEY, default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "channel_line_id"], name="order_line_once"),
            models.CheckConstraint(
                condition=Q(
                    quantity_shipped__lte=models.F("quantity") - models.F("quantity_cancelled")
                ),
                name="order_line_shipped_within_ordered",
            ),
        ]
        indexes = [models.Index(fields=["seller_sku"], name="order_line_seller_sku_idx")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.seller_sku}"

    @property
    def quantity_open(self) -> int:
        return self.quantity - self.quantity_shipped - self.quantity_cancelled

    @property
    def reservation_line(self) -> str:
        return str(self.pk)


class Shipment(models.Model):
    class Confirmation(models.TextChoices):
        PENDING = "pending", "Waiting to be sent to the channel"
        SENT = "sent", "Confirmed on the channel"
        FAILED = "failed", "Failed: see error"
        NOT_REQUIRED = "not_required", "Not required (shipped by the channel)"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="shipments")
    warehouse = models.ForeignKey(
        Warehouse, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    carrier_code = models.CharField(max_length=20)
    carrier_name = models.CharField(max_length=100, blank=True)
    service = models.CharField(max_length=100, blank=True)
    tracking_number = models.CharField(max_length=60, db_index=True)
    shipped_at = models.DateTimeField()
    confirmation_status = models.CharField(
        max_length=16, choices=Confirmation.choices, default=Confirmation.PENDING
    )
    confirmation_attempts = models.PositiveIntegerField(default=0)
    confirmation_error = models.TextField(blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=20, default="staff")
    created_at = models.DateTimeField(auto_now_add=True)

    tracking_status = models.CharField(max_length=20, blank=True)
    tracking_valid = models.BooleanField(
        null=True, blank=True, help_text="Whether the carrier recognises the tracking number."
    )
    last_tracked_at = models.DateTimeField(null=True, blank=True)
    estimated_delivery_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-shipped_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="shipment_idempotent",
            )
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(confirmation_status="pending"),
                name="shipment_pending_confirm_idx",
            ),
            models.Index(
                fields=["last_tracked_at"],
                condition=Q(delivered_at__isnull=True) & ~Q(tracking_number=""),
                name="shipment_to_track_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.carrier_code} {self.tracking_number}"


class ShipmentLine(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.quantity} x {self.order_line_id}"


class OrderEvent(models.Model):
    """The order's timeline: every transition and action, with who did it and the data."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["order", "created_at"], name="order_event_timeline_idx"),
            models.Index(fields=["kind", "created_at"], name="order_event_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind}"


class DeadlineAlert(models.Model):
    """An order that will miss its pack-by or ship-by; raised once per order and deadline."""

    class Kind(models.TextChoices):
        PACK_BY = "pack_by", "Will miss pack-by"
        SHIP_BY = "ship_by", "Will miss ship-by"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="deadline_alerts")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    due_at = models.DateTimeField()
    raised_at = models.DateTimeField(auto_now_add=True)
    emailed_to = models.CharField(max_length=254, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(fields=["order", "kind"], name="deadline_alert_once")
        ]

    def __str__(self) -> str:
        return f"{self.order} {self.kind} {self.due_at:%Y-%m-%d %H:%M}"


class TrackingEvent(models.Model):
    """A carrier scan of a shipment: accepted, in transit, out for delivery, delivered..."""

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        IN_TRANSIT = "in_transit", "In transit"
        OUT_FOR_DELIVERY = "out_for_delivery", "Out for delivery"
        DELIVERED = "delivered", "Delivered"
        EXCEPTION = "exception", "Exception"

    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="tracking_events")
    status = models.CharField(max_length=20, choices=Status.choices)
    occurred_at = models.DateTimeField()
    location = models.CharField(max_length=200, blank=True)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["shipment", "status", "occurred_at"], name="tracking_event_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.shipment_id} {self.status} {self.occurred_at:%Y-%m-%d %H:%M}"
