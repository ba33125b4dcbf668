"""Returns: requests with a 48-hour answer deadline, receipt into quarantine, inspection and
disposition per unit, and refunds sent back through the channel.

Statuses change only through ``returns.services.return_transition``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from inventory.models import SKU, Warehouse
from oms.models import MONEY, FulfillmentModel, Order, OrderLine, SalesChannel


class ReturnStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    AUTHORIZED = "authorized", "Authorized"
    REJECTED = "rejected", "Rejected"
    IN_TRANSIT = "in_transit", "In transit"
    RECEIVED = "received", "Received"
    INSPECTED = "inspected", "Inspected"
    REFUNDED = "refunded", "Refunded"
    CLOSED = "closed", "Closed"


R = ReturnStatus
# A refund is sent when the parcel is received (or on approval for a returnless refund), so
# "refunded" may come before or after "inspected"; a return closes once both are done. The
# channel may refund a return itself while the parcel is still on its way.
RETURN_TRANSITIONS: dict[str, set[str]] = {
    R.REQUESTED: {R.AUTHORIZED, R.REJECTED, R.CLOSED},
    R.AUTHORIZED: {R.IN_TRANSIT, R.RECEIVED, R.REFUNDED, R.CLOSED},
    R.REJECTED: {R.CLOSED},
    R.IN_TRANSIT: {R.RECEIVED, R.REFUNDED, R.CLOSED},
    R.RECEIVED: {R.INSPECTED, R.REFUNDED},
    R.INSPECTED: {R.REFUNDED, R.CLOSED},
    R.REFUNDED: {R.INSPECTED, R.CLOSED},
    R.CLOSED: set(),
}
OPEN_RETURN_STATUSES = [R.REQUESTED, R.AUTHORIZED, R.IN_TRANSIT, R.RECEIVED, R.INSPECTED]


class AutoDecisionRule(models.Model):
    """A seller's rule for answering returns without staff, tried in priority order."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approve"
        RETURNLESS_REFUND = "returnless_refund", "Refund without a return"

    name = models.CharField(max_length=100)
    priority = models.PositiveSmallIntegerField(default=10, help_text="Lower is tried first.")
    is_active = models.BooleanField(default=True)
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.APPROVE)
    channel = models.ForeignKey(
        SalesChannel, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    reason_codes = models.CharField(
        max_length=500,
        blank=True,
        help_text="Comma-separated channel reason codes; blank matches any reason.",
    )
    category = models.CharField(
        max_length=100, blank=True, help_text="SKU category every line must be in; blank: any."
    )
    max_value = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Only returns worth less than this."
    )
    refund_shipping = models.BooleanField(
        default=False, help_text="Refund the order's shipping too when this rule approves."
    )

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def reason_code_list(self) -> list[str]:
        return [code.strip().upper() for code in self.reason_codes.split(",") if code.strip()]


class ReturnRequest(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="returns")
    channel = models.ForeignKey(SalesChannel, on_delete=models.PROTECT, related_name="+")
    channel_return_id = models.CharField(max_length=100, blank=True)
    rma = models.CharField("RMA", max_length=20, unique=True)
    fulfillment_model = models.CharField(
        max_length=3, choices=FulfillmentModel.choices, default=FulfillmentModel.FBM
    )
    status = models.CharField(max_length=12, choices=ReturnStatus.choices, default=R.REQUESTED)
    reason_code = models.CharField(max_length=60, blank=True)
    buyer_comment = models.TextField(blank=True)
    requested_at = models.DateTimeField()
    respond_by = models.DateTimeField(help_text="48 hours after the request.")
    responded_at = models.DateTimeField(null=True, blank=True)
    decided_by_rule = models.ForeignKey(
        AutoDecisionRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_note = models.CharField(max_length=300, blank=True)
    returnless = models.BooleanField(default=False, help_text="Refunded without a return.")
    refund_shipping = models.BooleanField(default=False)
    quarantine = models.ForeignKey(
        Warehouse,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"kind": Warehouse.Kind.QUARANTINE},
    )
    received_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    raw_payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["respond_by"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "channel_return_id"],
                condition=~Q(channel_return_id=""),
                name="return_once_per_channel",
            )
        ]
        indexes = [
            models.Index(
                fields=["respond_by"], condition=Q(status="requested"), name="return_to_answer_idx"
            ),
            models.Index(fields=["status", "respond_by"], name="return_status_idx"),
            models.Index(fields=["respond_by", "id"], name="return_queue_idx"),
            models.Index(fields=["fulfillment_model", "respond_by"], name="return_model_idx"),
        ]
        permissions = [
            ("decide_return", "Can approve and reject returns"),
            ("receive_return", "Can receive returned parcels"),
            ("inspect_return", "Can inspect returned units"),
            ("refund_return", "Can refund returns"),
        ]

    def __str__(self) -> str:
        return self.rma

    @property
    def answered_late(self) -> bool:
        return bool(self.responded_at and self.responded_at > self.respond_by)

    @property
    def reference(self) -> str:
        return f"rma:{self.rma}"


class ReturnLine(models.Model):
    return_request = models.ForeignKey(
        ReturnRequest, on_delete=models.CASCADE, related_name="lines"
    )
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="+")
    sku = models.ForeignKey(SKU, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    quantity_received = models.PositiveIntegerField(default=0)
    quantity_inspected = models.PositiveIntegerField(default=0)
    quantity_refunded = models.PositiveIntegerField(
        default=0, help_text="Units in a refund (ours or the channel's): never refunded again."
    )
    quantity_not_returned = models.PositiveIntegerField(
        default=0, help_text="Units staff stopped waiting for: they will not be received."
    )
    unit_price = models.DecimalField(**MONEY, default=0)
    refund_amount = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        help_text="Money back for all the line's units; blank: what was paid for them.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    quantity_received__lte=models.F("quantity") - models.F("quantity_not_returned")
                ),
                name="return_line_received_within_requested",
            ),
            models.CheckConstraint(
                condition=Q(quantity_inspected__lte=models.F("quantity_received")),
                name="return_line_inspected_within_received",
            ),
            models.CheckConstraint(
                condition=Q(quantity_refunded__lte=models.F("quantity")),
                name="return_line_refunded_within_requested",
            ),
            models.CheckConstraint(
                condition=Q(refund_amount__isnull=True) | Q(refund_amount__gte=0),
                name="return_line_refund_amount_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.order_line.seller_sku}"

    @property
    def value(self):
        return self.unit_price * self.quantity

    @property
    def paid(self):
        """What the buyer paid for the line's units: the most a refund may give back."""
        return self.unit_price * self.quantity

    @property
    def refund_total(self):
        """What goes back for all the line's units (a partial amount when staff set one)."""
        return self.paid if self.refund_amount is None else self.refund_amount

    @property
    def quantity_expected(self) -> int:
        """Units still meant to come back in all (requested less those given up on)."""
        return self.quantity - self.quantity_not_returned

    @property
    def quantity_due(self) -> int:
        """Units not received yet and still expected."""
        return self.quantity_expected - self.quantity_received


class Inspection(models.Model):
    """The grade and disposition of some units of a return line."""

    class Grade(models.TextChoices):
        SELLABLE = "sellable", "Sellable"
        DAMAGED = "damaged", "Damaged"
        DEFECTIVE = "defective", "Defective"

    class Disposition(models.TextChoices):
        RESTOCK = "restock", "Restocked (sellable)"
        WRITE_OFF = "write_off", "Written off"
        RETURN_TO_SUPPLIER = "return_to_supplier", "Sent back to the supplier"

    return_line = models.ForeignKey(
        ReturnLine, on_delete=models.CASCADE, related_name="inspections"
    )
    grade = models.CharField(max_length=10, choices=Grade.choices)
    disposition = models.CharField(max_length=20, choices=Disposition.choices)
    quantity = models.PositiveIntegerField()
    reason = models.CharField(max_length=300, blank=True)
    restock_warehouse = models.ForeignKey(
        Warehouse, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    inspected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    inspected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(grade="sellable", disposition="restock")
                | (~Q(grade="sellable") & ~Q(disposition="restock")),
                name="inspection_only_sellable_restocks",
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.grade} -> {self.disposition}"


class Refund(models.Model):
    """Money back through the channel, sent at most once (``refund_key``): one per receipt
    batch (or one for a returnless refund), each for units no other refund covers. A refund
    the channel made itself (imported with the return) is recorded *by channel*, never sent.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Refunded on the channel"
        FAILED = "failed", "Failed: see error"
        NOT_REQUIRED = "not_required", "Not through a channel API"
        BY_CHANNEL = "by_channel", "Refunded by the channel itself"

    return_request = models.ForeignKey(
        ReturnRequest, on_delete=models.PROTECT, related_name="refunds"
    )
    refund_key = models.CharField(
        max_length=60, unique=True, help_text="Sent to the channel so a retry is recognised."
    )
    currency = models.CharField(max_length=3, default="USD")
    amount = models.DecimalField(**MONEY, default=0)
    shipping_amount = models.DecimalField(**MONEY, default=0)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    channel_refund_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.refund_key} {self.amount} {self.currency}"

    @property
    def total(self):
        return self.amount + self.shipping_amount


class RefundLine(models.Model):
    """Units of one return line in one refund; a line's units are refunded at most once in
    all (``ReturnLine.quantity_refunded`` counts them, within the line's quantity)."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="lines")
    return_line = models.ForeignKey(
        ReturnLine, on_delete=models.PROTECT, related_name="refund_lines"
    )
    quantity = models.PositiveIntegerField()
    amount = models.DecimalField(**MONEY)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["refund", "return_line"], name="refund_line_once_per_refund"
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.return_line_id}: {self.amount}"


class ReturnEvent(models.Model):
    return_request = models.ForeignKey(
        ReturnRequest, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=40)
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12, blank=True)
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.return_request_id} {self.kind}"


class ReturnAlert(models.Model):
    """A return close to its 48 hours without an answer; raised once per return."""

    return_request = models.OneToOneField(
        ReturnRequest, on_delete=models.CASCADE, related_name="alert"
    )
    raised_at = models.DateTimeField(auto_now_add=True)
    emailed_to = models.CharField(max_length=254, blank=True)

    def __str__(self) -> str:
        return f"{self.return_request} due {self.return_request.respond_by:%Y-%m-%d %H:%M}"


class LateAnswerDaily(models.Model):
    """Per channel and day: return requests answered, and how many after their 48 hours."""

    channel = models.ForeignKey(SalesChannel, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    answered = models.PositiveIntegerField(default=0)
    answered_late = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "channel"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "day"], name="late_answers_once_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.day}: {self.answered_late}/{self.answered} late"
