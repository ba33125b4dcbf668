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
    # Indexed as the first column of (channel, external id) and of order_channel_idx: an index
    # of its own would only cost every insert (and tempt the planner, before statistics
    # exist, to scan a channel's orders for one id).
    channel = models.ForeignKey(
        SalesChannel, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
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


# =============================================================================================
# Account health (``oms.health``): defects recorded per order, the thresholds each metric is
# held to, daily snapshots of every metric, the alerts raised from them, Amazon's own figures
# to check ours against, and the FBA stock figures Amazon reports.
# =============================================================================================


class HealthMetric(models.TextChoices):
    ORDER_DEFECT_RATE = "order_defect_rate", "Order defect rate"
    LATE_SHIPMENT_RATE_10 = "late_shipment_rate_10", "Late shipment rate (10 days)"
    LATE_SHIPMENT_RATE_30 = "late_shipment_rate_30", "Late shipment rate (30 days)"
    CANCELLATION_RATE = "cancellation_rate", "Pre-fulfillment cancellation rate"
    VALID_TRACKING_RATE = "valid_tracking_rate", "Valid tracking rate"
    ON_TIME_DELIVERY_RATE = "on_time_delivery_rate", "On-time delivery rate"
    LATE_RETURN_ANSWER_RATE = "late_return_answer_rate", "Late answers to return requests"
    FBA_UNITS = "fba_units", "FBA units held by Amazon"
    FBA_DAYS_OF_COVER = "fba_days_of_cover", "FBA days of cover"
    FBA_UNFULFILLABLE = "fba_unfulfillable", "FBA unfulfillable units"
    FBA_STRANDED = "fba_stranded", "FBA stranded units"


class Comparison(models.TextChoices):
    """How a metric's rate must stand against its threshold to be in good standing."""

    LESS_THAN = "lt", "below"
    AT_MOST = "lte", "at most"
    GREATER_THAN = "gt", "above"
    AT_LEAST = "gte", "at least"


class OrderDefect(models.Model):
    """An A-to-z claim, chargeback or negative feedback on an order: counts in the order
    defect rate until ``removed_at`` (claim denied, feedback removed)."""

    class Kind(models.TextChoices):
        A_TO_Z_CLAIM = "a_to_z_claim", "A-to-z Guarantee claim"
        CHARGEBACK = "chargeback", "Chargeback"
        NEGATIVE_FEEDBACK = "negative_feedback", "Negative feedback (1-2 stars)"

    class Source(models.TextChoices):
        IMPORTED = "imported", "Imported from the channel"
        STAFF = "staff", "Entered by staff"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="defects")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    opened_at = models.DateTimeField(help_text="When the buyer opened the claim or left feedback.")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.STAFF)
    external_id = models.CharField(
        max_length=100, blank=True, help_text="The channel's claim or feedback id."
    )
    note = models.CharField(max_length=500, blank=True)
    removed_at = models.DateTimeField(
        null=True, blank=True, help_text="Claim denied or feedback removed: no longer counts."
    )
    channel_status = models.CharField(
        max_length=60, blank=True, help_text="The channel's own status, for imported defects."
    )
    raw_payload = models.JSONField(
        default=dict, blank=True, help_text="The channel's record as last imported."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "kind"], name="order_defect_once_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.order} {self.kind}"


class MetricThreshold(models.Model):
    """The level a metric must stay within for one program (and one channel, or all), and how
    much headroom is left before the seller wants an alert."""

    metric = models.CharField(max_length=30, choices=HealthMetric.choices)
    program = models.CharField(max_length=3, choices=FulfillmentModel.choices)
    channel = models.ForeignKey(
        SalesChannel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Blank: every channel without its own threshold.",
    )
    threshold = models.DecimalField(max_digits=7, decimal_places=5, help_text="A rate: 0.01 is 1%.")
    comparison = models.CharField(max_length=3, choices=Comparison.choices)
    warn_headroom = models.PositiveIntegerField(
        default=5,
        help_text="Alert when fewer than this many more bad orders (or shipments) would "
        "breach the threshold.",
    )
    alert_email = models.EmailField(
        blank=True, help_text="Where alerts go; blank: the health alert recipients."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["metric", "program", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "program", "channel"],
                condition=Q(channel__isnull=False),
                name="metric_threshold_once_per_channel",
            ),
            models.UniqueConstraint(
                fields=["metric", "program"],
                condition=Q(channel__isnull=True),
                name="metric_threshold_one_default",
            ),
            models.CheckConstraint(
                condition=Q(threshold__gte=0) & Q(threshold__lte=1),
                name="metric_threshold_is_a_rate",
            ),
        ]

    def __str__(self) -> str:
        where = self.channel or "all channels"
        return f"{self.get_metric_display()} {self.program} ({where}): {self.threshold}"


class MetricSnapshot(models.Model):
    """One metric for one channel and program as of the end of ``day`` (UTC); today's row is
    refreshed through the day and holds the latest live figure."""

    day = models.DateField()
    channel = models.ForeignKey(SalesChannel, on_delete=models.CASCADE, related_name="+")
    program = models.CharField(max_length=3, choices=FulfillmentModel.choices)
    metric = models.CharField(max_length=30, choices=HealthMetric.choices)
    numerator = models.BigIntegerField(default=0)
    denominator = models.BigIntegerField(default=0)
    value = models.FloatField(null=True, blank=True)
    threshold = models.DecimalField(max_digits=7, decimal_places=5, null=True, blank=True)
    comparison = models.CharField(max_length=3, choices=Comparison.choices, blank=True)
    status = models.CharField(max_length=10, blank=True)
    headroom = models.IntegerField(null=True, blank=True)
    at_risk = models.IntegerField(default=0)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "channel", "program", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "channel", "program", "metric"], name="metric_snapshot_once"
            )
        ]
        indexes = [models.Index(fields=["day"], name="metric_snapshot_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.channel_id} {self.program} {self.metric}: {self.value}"


class HealthAlert(models.Model):
    """A metric's headroom fell below its alert level: raised once per crossing, resolved
    when the headroom recovers; the next fall is a new crossing."""

    class Level(models.TextChoices):
        WARNING = "warning", "Headroom below the alert level"
        BREACHED = "breached", "Threshold breached"

    metric = models.CharField(max_length=30, choices=HealthMetric.choices)
    channel = models.ForeignKey(SalesChannel, on_delete=models.CASCADE, related_name="+")
    program = models.CharField(max_length=3, choices=FulfillmentModel.choices)
    crossing = models.PositiveIntegerField(
        help_text="1 the first time this metric fell below its alert level, 2 the next..."
    )
    level = models.CharField(max_length=10, choices=Level.choices)
    value = models.FloatField(null=True, blank=True)
    threshold = models.DecimalField(max_digits=7, decimal_places=5)
    headroom = models.IntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    raised_at = models.DateTimeField()
    breached_at = models.DateTimeField(null=True, blank=True)
    emailed_to = models.CharField(max_length=500, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "channel", "program", "crossing"],
                name="health_alert_once_per_crossing",
            ),
            models.UniqueConstraint(
                fields=["metric", "channel", "program"],
                condition=Q(resolved_at__isnull=True),
                name="health_alert_one_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.program} {self.metric} #{self.crossing} {self.level}"


class HealthReportCheck(models.Model):
    """Our figure for one metric over the channel's own reporting window, beside the figure
    the channel reported (Amazon's seller performance report)."""

    channel = models.ForeignKey(SalesChannel, on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=30, choices=HealthMetric.choices)
    fulfillment = models.CharField(
        max_length=3, help_text="Amazon's split: mfn (merchant, FBM + SFP) or afn (FBA)."
    )
    date_from = models.DateTimeField()
    date_to = models.DateTimeField()
    our_numerator = models.BigIntegerField()
    our_denominator = models.BigIntegerField()
    our_value = models.FloatField(null=True, blank=True)
    their_numerator = models.BigIntegerField(null=True, blank=True)
    their_denominator = models.BigIntegerField(null=True, blank=True)
    their_value = models.FloatField(null=True, blank=True)
    their_status = models.CharField(max_length=10, blank=True)
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["-checked_at", "channel", "metric"]
        indexes = [models.Index(fields=["-checked_at"], name="health_report_check_idx")]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.metric} {self.fulfillment} {self.checked_at:%Y-%m-%d}"

    @property
    def difference(self) -> float | None:
        """Our rate minus the channel's, or ``None`` when either is missing."""
        if self.our_value is None or self.their_value is None:
            return None
        return self.our_value - self.their_value


class FbaInventoryFigure(models.Model):
    """What Amazon last reported holding for one seller SKU (FBA inventory summaries)."""

    channel = models.ForeignKey(SalesChannel, on_delete=models.CASCADE, related_name="+")
    seller_sku = models.CharField(max_length=100)
    sku = models.ForeignKey(SKU, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    fulfillable = models.IntegerField(default=0)
    inbound = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    unfulfillable = models.IntegerField(default=0)
    listed = models.BooleanField(
        default=True, help_text="An active offer sells it; units held without one are stranded."
    )
    refreshed_at = models.DateTimeField()

    class Meta:
        verbose_name = "FBA inventory figure"
        ordering = ["channel", "seller_sku"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "seller_sku"], name="fba_figure_once")
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.seller_sku} {self.fulfillable} fulfillable"

    @property
    def stranded(self) -> int:
        return 0 if self.listed else self.fulfillable
