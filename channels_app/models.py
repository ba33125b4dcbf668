"""Channels (how we connect to each marketplace), their listings, and what the integration saw:
import errors, webhook events and a per-channel sync log."""

from __future__ import annotations

import json

from django.db import models
from django.db.models import Q

from inventory.models import SKU
from oms.models import FulfillmentModel, SalesChannel

from .crypto import decrypt, encrypt


class Channel(SalesChannel):
    """A sales channel with its API connection. Extends ``oms.SalesChannel`` (multi-table),
    so orders keep pointing at the order domain's notion of a channel."""

    DEFAULT_BASE_URLS = {
        SalesChannel.Kind.AMAZON: "https://sellingpartnerapi-na.amazon.com",
        SalesChannel.Kind.SHOPIFY: "https://example.myshopify.com",
        SalesChannel.Kind.EBAY: "https://api.ebay.com",
        SalesChannel.Kind.WALMART: "https://marketplace.walmartapis.com",
    }

    base_url = models.URLField(
        blank=True, help_text="The channel API's address; blank means the real API."
    )
    credentials_encrypted = models.TextField(blank=True, editable=False)
    settings_json = models.JSONField(
        "connection settings",
        default=dict,
        blank=True,
        help_text='Non-secret settings, e.g. {"location_id": "123"} for Shopify.',
    )
    poll_interval_seconds = models.PositiveIntegerField(default=60)
    orders_cursor = models.DateTimeField(
        null=True, blank=True, help_text="Orders updated after this time are fetched next."
    )
    returns_cursor = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    dispatching_until = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="A dispatcher is sending pushes."
    )

    # Quantity policy (each listing may override): what share of available stock to show.
    safety_buffer = models.PositiveIntegerField(
        default=0, help_text="Units always held back from this channel."
    )
    percent_shown = models.PositiveSmallIntegerField(
        default=100, help_text="Show this percentage of available stock (rounded down)."
    )
    max_shown = models.PositiveIntegerField(null=True, blank=True, help_text="Never show more.")
    min_shown = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="When the percentage rounds a few units down, still show up to this many "
        "(never more than is available).",
    )
    zero_at_or_below = models.PositiveIntegerField(
        null=True, blank=True, help_text="Send 0 when available stock is at or below this."
    )
    velocity_buffer = models.BooleanField(
        default=True,
        help_text="Hold back the units expected to sell on all channels during this channel's "
        "push delay, from the SKU's recent sales rate.",
    )
    push_delay_seconds = models.PositiveIntegerField(
        default=5, help_text="How long a quantity change takes to show on this channel."
    )
    last_units_threshold = models.PositiveIntegerField(
        default=2,
        null=True,
        blank=True,
        help_text="The last this many units are offered only on channels marked safe for last "
        "units; other channels show the available stock minus these (0 at or below it). Only "
        "for stock another channel also sells: a SKU listed here alone shows all of it. Blank "
        "or 0 turns it off. With no channel marked safe, these units are offered nowhere.",
    )
    safe_for_last_units = models.BooleanField(
        default=False,
        help_text="Checkout takes stock atomically (e.g. our own webshop): this channel also "
        "offers the last units the others keep back.",
    )
    rate_per_second = models.FloatField(
        null=True, blank=True, help_text="Push rate limit; blank uses the channel's default."
    )
    burst = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "channel connection"

    @property
    def api_base_url(self) -> str:
        return self.base_url or self.DEFAULT_BASE_URLS.get(self.kind, "")

    def set_credentials(self, values: dict) -> None:
        self.credentials_encrypted = encrypt(json.dumps(values)) if values else ""

    def get_credentials(self) -> dict:
        if not self.credentials_encrypted:
            return {}
        return json.loads(decrypt(self.credentials_encrypted))

    def credentials_masked(self) -> dict[str, str]:
        """Credential names with only their last four characters, for display."""
        return {
            key: ("•" * 8 + str(value)[-4:]) if len(str(value)) > 4 else "•" * 8
            for key, value in self.get_credentials().items()
        }


class Listing(models.Model):
    """One of our SKUs offered on a channel, with the channel's own identifiers."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"
        ERROR = "error", "Error"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="listings")
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="listings")
    seller_sku = models.CharField(max_length=100, help_text="The SKU as the channel knows it.")
    asin = models.CharField("ASIN", max_length=20, blank=True)
    channel_listing_id = models.CharField(
        max_length=100, blank=True, help_text="Inventory item id, offer id or item id."
    )
    fulfillment_model = models.CharField(
        max_length=3, choices=FulfillmentModel.choices, default=FulfillmentModel.FBM
    )
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    handling_days = models.PositiveSmallIntegerField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    last_pushed_quantity = models.IntegerField(null=True, blank=True, editable=False)
    last_pushed_price = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, editable=False
    )
    last_pushed_handling_days = models.PositiveSmallIntegerField(
        null=True, blank=True, editable=False
    )
    last_pushed_at = models.DateTimeField(null=True, blank=True, editable=False)
    push_version = models.PositiveIntegerField(
        default=0, editable=False, help_text="Increases with every value computed to push."
    )

    # Overrides of the channel's quantity policy (blank = the channel's value).
    safety_buffer = models.PositiveIntegerField(null=True, blank=True)
    percent_shown = models.PositiveSmallIntegerField(null=True, blank=True)
    max_shown = models.PositiveIntegerField(null=True, blank=True)
    min_shown = models.PositiveIntegerField(null=True, blank=True)
    zero_at_or_below = models.PositiveIntegerField(null=True, blank=True)
    last_units_threshold = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["channel", "seller_sku"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "seller_sku"], name="listing_once")
        ]
        indexes = [models.Index(fields=["sku", "channel"], name="listing_sku_idx")]

    def __str__(self) -> str:
        return f"{self.channel.code}:{self.seller_sku}"


class OrderImportError(models.Model):
    """A channel record we could not import, kept with its raw payload until fixed."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="import_errors")
    external_id = models.CharField(max_length=100, blank=True)
    reason = models.TextField()
    raw_payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["channel", "external_id"],
                condition=Q(resolved_at__isnull=True),
                name="import_error_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel.code}:{self.external_id or '?'}"


class WebhookEvent(models.Model):
    """A webhook delivery, stored before processing; the event id makes replays no-ops."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="webhook_events")
    event_id = models.CharField(max_length=100)
    topic = models.CharField(max_length=60)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "event_id"], name="webhook_event_once")
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.event_id}"


class SyncLog(models.Model):
    """One integration run against a channel: an order poll, a confirmation, a push batch."""

    class Kind(models.TextChoices):
        ORDERS = "orders", "Order import"
        CONFIRMATION = "confirmation", "Shipment confirmation"
        PUSH = "push", "Inventory push"
        RECONCILE = "reconcile", "Reconciliation"
        WEBHOOK = "webhook", "Webhook"
        CONNECTION = "connection", "Connection test"
        REFUND = "refund", "Refund"
        RETURNS = "returns", "Returns import"
        DEFECTS = "defects", "Claims, chargebacks and feedback import"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="sync_logs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    ok = models.BooleanField(default=True)
    items = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-finished_at"]
        indexes = [models.Index(fields=["channel", "-finished_at"], name="sync_log_recent_idx")]

    def __str__(self) -> str:
        return f"{self.channel.code} {self.kind} {'ok' if self.ok else 'failed'}"


class PendingPush(models.Model):
    """The latest value a listing should show and has not yet been confirmed by the channel.

    One row per listing: a newer value overwrites an unsent older one (superseded). A row is
    claimed for sending with a lease; only one push per listing is ever in flight, so a
    listing never receives an older value after a newer one.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "Sending"
        FAILED = "failed", "Failed: retry from the admin"

    listing = models.OneToOneField(Listing, on_delete=models.CASCADE, related_name="pending_push")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    quantity = models.IntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    handling_days = models.PositiveSmallIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    claimed_version = models.PositiveIntegerField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(
        default=10,
        help_text="Lower goes first: a drop to 0-9 units is that number, anything else 10.",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    superseded = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    first_enqueued_at = models.DateTimeField(help_text="When the oldest unsent change arrived.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["channel", "priority", "next_attempt_at"],
                condition=Q(state="pending"),
                name="pending_push_due_idx",
            ),
            models.Index(
                fields=["lease_until"],
                condition=Q(state="in_flight"),
                name="pending_push_lease_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.listing} -> {self.quantity}"


class PushLog(models.Model):
    """What happened to each value computed for a listing, in the terms sellers know."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        SUPERSEDED = "superseded", "Superseded by a newer value"
        ERROR = "error", "Error"
        SKIPPED = "skipped", "Skipped (no change)"

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="push_logs")
    state = models.CharField(max_length=10, choices=State.choices)
    quantity = models.IntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    version = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["listing", "-created_at"], name="push_log_listing_idx"),
            models.Index(fields=["state", "-created_at"], name="push_log_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.listing_id} {self.state} {self.quantity}"


class RateLimitBucket(models.Model):
    """Token bucket state for a channel when no Redis is configured (shared via the DB)."""

    key = models.CharField(max_length=100, unique=True)
    tokens = models.FloatField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key


class DriftRecord(models.Model):
    """A listing that showed a different quantity than we computed, found by reconciliation."""

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="drift")
    shown_quantity = models.IntegerField(null=True)
    expected_quantity = models.IntegerField()
    found_at = models.DateTimeField(auto_now_add=True)
    fixed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-found_at"]

    def __str__(self) -> str:
        return f"{self.listing}: shown {self.shown_quantity}, expected {self.expected_quantity}"


class WarehouseConnection(models.Model):
    """How a warehouse receives work: by hand from the admin, or through its WMS/3PL API."""

    class Mode(models.TextChoices):
        MANUAL = "manual", "Manual (staff work from pick lists)"
        API = "api", "API (WMS or 3PL)"

    warehouse = models.OneToOneField(
        "inventory.Warehouse", on_delete=models.CASCADE, related_name="connection"
    )
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.MANUAL)
    endpoint_url = models.URLField(blank=True)
    secret_encrypted = models.TextField(blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.warehouse} ({self.mode})"

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = encrypt(secret) if secret else ""

    def get_secret(self) -> str:
        return decrypt(self.secret_encrypted) if self.secret_encrypted else ""

    @property
    def is_api(self) -> bool:
        return self.mode == self.Mode.API and self.is_active and bool(self.endpoint_url)


class FulfillmentRequest(models.Model):
    """A message to an API warehouse about an order (send it, cancel it, new address), kept
    until the warehouse accepted it: retried with backoff, never dropped."""

    class Kind(models.TextChoices):
        ORDER = "order", "Fulfil order"
        CANCEL = "cancel", "Cancel order"
        ADDRESS = "address", "Change address"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Accepted by the warehouse"
        FAILED = "failed", "Failed: see error"
        REFUSED = "refused", "Refused: already shipped"

    order = models.ForeignKey(
        "oms.Order", on_delete=models.CASCADE, related_name="fulfillment_requests"
    )
    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=100, unique=True)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="pending"),
                name="fulfillment_request_due_idx",
            ),
            # The orders changelist's "warehouse delivery" filter (retrying, failed, refused).
            models.Index(
                fields=["state", "order"],
                condition=~Q(state="sent"),
                name="fulfillment_request_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.order_id} ({self.state})"


class InboundEvent(models.Model):
    """A call from a warehouse (shipment, stock snapshot, return receipt), once per event id."""

    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    payload = models.JSONField()
    outcome = models.CharField(max_length=500, blank=True)
    ok = models.BooleanField(default=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["warehouse", "event_id"], name="inbound_event_once")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.event_id}"


class StockSnapshot(models.Model):
    """A warehouse's own count of its stock, applied as counts, with the drift it showed."""

    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.CASCADE, related_name="+")
    taken_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    lines_total = models.PositiveIntegerField(default=0)
    lines_drifted = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"{self.warehouse} {self.taken_at:%Y-%m-%d %H:%M}"


class StockSnapshotLine(models.Model):
    snapshot = models.ForeignKey(StockSnapshot, on_delete=models.CASCADE, related_name="lines")
    sku_code = models.CharField(max_length=64)
    counted = models.IntegerField()
    system_on_hand = models.IntegerField(null=True)
    difference = models.IntegerField(default=0)
    problem = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["sku_code"]

    def __str__(self) -> str:
        return f"{self.sku_code}: {self.counted} ({self.difference:+d})"
