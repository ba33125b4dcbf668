"""Inventory: warehouses, SKUs (incl. bundles), stock levels, the movement ledger, reservations.

Counters on ``StockLevel`` are a cache of the ledger: ``on_hand`` is the sum of every movement's
``on_hand_delta`` and ``reserved`` the sum of active reservations. Only ``inventory.services``
writes any of these rows.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from timezone_field import TimeZoneField

from .validators import validate_gtin


def default_carrier_cutoff() -> datetime.time:
    """14:00. Time defaults are functions: Django's checks warn about a fixed one for the 20
    seconds a day the clock shows it."""
    return datetime.time(14, 0)


class Warehouse(models.Model):
    class Kind(models.TextChoices):
        OWN = "own", "Own warehouse"
        THREE_PL = "3pl", "3PL"
        FBA = "fba", "FBA (held by Amazon)"
        QUARANTINE = "quarantine", "Quarantine (returns awaiting inspection)"

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OWN)
    time_zone = TimeZoneField(default="UTC")
    country = models.CharField(
        max_length=2, default="US", help_text="ISO country code; drives the holiday calendar."
    )
    subdivision = models.CharField(
        max_length=10, blank=True, help_text="State or region code for regional public holidays."
    )
    carrier_cutoff = models.TimeField(
        default=default_carrier_cutoff,
        help_text="Local time after which an order counts from the next business day.",
    )
    packing_buffer_minutes = models.PositiveIntegerField(
        default=30, help_text="Packing must finish this long before the pickup."
    )
    contact_email = models.EmailField(blank=True, help_text="Receives shipment-deadline alerts.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name or self.code

    @property
    def is_sellable(self) -> bool:
        """Quarantine stock is never offered for sale."""
        return self.kind != self.Kind.QUARANTINE

    def carrier_pickups(self) -> list[CarrierPickup]:
        """Its pickups, the default one first; a warehouse with none has one implicit default
        pickup (``DEFAULT_PICKUP_TIME`` on weekdays). Reads ``pickups`` once (prefetch it)."""
        saved = self.pickups.all() if self.pk else []
        pickups = sorted(saved, key=lambda p: (not p.is_default, p.cutoff, p.pk))
        if not any(p.is_default for p in pickups):
            pickups.insert(0, CarrierPickup.implicit_default(self))
        return pickups

    @property
    def default_pickup(self) -> CarrierPickup:
        """Where orders go that no other pickup takes (see ``CarrierPickup``)."""
        return self.carrier_pickups()[0]


DEFAULT_PICKUP_TIME = datetime.time(15, 0)


def default_pickup_time() -> datetime.time:
    return DEFAULT_PICKUP_TIME


WEEKDAYS = [("0", "Mon"), ("1", "Tue"), ("2", "Wed"), ("3", "Thu"), ("4", "Fri"), ("5", "Sat"),
            ("6", "Sun")]  # fmt: skip


def validate_weekdays(value: str) -> None:
    if not value or not set(value) <= set("0123456") or len(set(value)) != len(value):
        raise ValidationError(
            "Give the pickup days as weekday numbers, Monday 0 to Sunday 6, each once (e.g. "
            "'01234' for Monday to Friday)."
        )


class CarrierPickup(models.Model):
    """A carrier's collection at a warehouse: its cut-off (the local time the carrier takes
    the parcels, in the warehouse's time zone) on the weekdays it comes.

    An order waiting to be packed belongs to the first pickup (by cut-off) whose carrier or
    shipping services name the order's service level (case-insensitive), else to the
    warehouse's default pickup, which also sets the ship days and pickup time behind the
    orders' pack-by and ship-by deadlines.
    """

    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE, related_name="pickups")
    carrier = models.CharField(max_length=60, blank=True, help_text="E.g. UPS, USPS, FedEx.")
    services = models.CharField(
        "shipping services",
        max_length=300,
        blank=True,
        help_text="Comma-separated service levels this pickup takes (e.g. 'NextDay, "
        "SecondDay'); an order whose service level is the carrier's name goes here too.",
    )
    cutoff = models.TimeField(
        "cut-off",
        default=default_pickup_time,
        help_text="Local time (warehouse time zone) the carrier collects; packing must finish "
        "the warehouse's packing buffer before it.",
    )
    weekdays = models.CharField(
        max_length=7,
        default="01234",
        validators=[validate_weekdays],
        help_text="The days it comes, Monday 0 to Sunday 6 (public holidays are skipped).",
    )
    is_default = models.BooleanField(
        "default pickup",
        default=False,
        help_text="Takes every order no other pickup of the warehouse takes.",
    )

    class Meta:
        ordering = ["warehouse", "cutoff", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["warehouse"],
                condition=Q(is_default=True),
                name="carrier_pickup_one_default",
            )
        ]

    def __str__(self) -> str:
        return f"{self.carrier or 'Carrier'} {self.cutoff:%H:%M}"

    @classmethod
    def implicit_default(cls, warehouse: Warehouse) -> CarrierPickup:
        """The default pickup of a warehouse that has none saved: ``DEFAULT_PICKUP_TIME`` on
        weekdays."""
        return cls(warehouse=warehouse, is_default=True)

    @property
    def label(self) -> str:
        """The carrier's name, or "carrier" for a default pickup left unnamed."""
        return self.carrier or "carrier"

    @property
    def service_names(self) -> frozenset[str]:
        """The order service levels it takes, lower-cased: its services and its carrier."""
        names = {name.strip().lower() for name in self.services.split(",")} | {
            self.carrier.strip().lower()
        }
        return frozenset(names - {""})

    @property
    def weekday_numbers(self) -> frozenset[int]:
        return frozenset(int(day) for day in self.weekdays)


class SKU(models.Model):
    class Kind(models.TextChoices):
        STANDARD = "standard", "Standard item"
        BUNDLE = "bundle", "Bundle / kit"

    code = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=300, blank=True)
    barcode = models.CharField(
        "barcode (GTIN)", max_length=14, blank=True, validators=[validate_gtin]
    )
    weight_grams = models.PositiveIntegerField(default=0)
    category = models.CharField(max_length=100, blank=True, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STANDARD)
    is_active = models.BooleanField(default=True)
    components = models.ManyToManyField(
        "self",
        through="BundleComponent",
        through_fields=("bundle", "component"),
        symmetrical=False,
        related_name="bundles",
        blank=True,
    )

    class Meta:
        verbose_name = "SKU"
        verbose_name_plural = "SKUs"
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    @property
    def is_bundle(self) -> bool:
        return self.kind == self.Kind.BUNDLE


class BundleComponent(models.Model):
    bundle = models.ForeignKey(SKU, on_delete=models.CASCADE, related_name="bundle_lines")
    component = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="component_of")
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bundle", "component"], name="bundle_component_once"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="bundle_component_qty_pos"),
            models.CheckConstraint(
                condition=~Q(bundle=F("component")), name="bundle_not_own_component"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.component}"


class StockLevel(models.Model):
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="stock_levels")
    # No index of its own: the unique (warehouse, SKU) index leads with it. A second index on
    # the warehouse alone would tempt the planner, before statistics exist, to scan all of a
    # warehouse's levels for one SKU's.
    warehouse = models.ForeignKey(
        Warehouse, on_delete=models.PROTECT, related_name="stock_levels", db_index=False
    )
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    bin_location = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["warehouse", "sku"], name="stock_level_once"),
            models.CheckConstraint(
                condition=Q(reserved__gte=0) & Q(reserved__lte=F("on_hand")),
                name="stock_reserved_within_on_hand",
            ),
        ]
        permissions = [
            ("receive_stock", "Can receive stock"),
            ("adjust_stock", "Can adjust stock"),
            ("count_stock", "Can record stock counts"),
            ("transfer_stock", "Can transfer stock"),
            ("repair_ledger", "Can repair counters from the ledger"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}@{self.warehouse_id}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise LedgerAppendOnly("the stock movement ledger is append-only (UPDATE refused)")

    def delete(self):
        raise LedgerAppendOnly("the stock movement ledger is append-only (DELETE refused)")


class LedgerAppendOnly(Exception):
    pass


class StockMovement(models.Model):
    """One append-only ledger entry. Refused on UPDATE and DELETE by database triggers (on
    PostgreSQL; on SQLite updates only) and by the model layer."""

    class Kind(models.TextChoices):
        RECEIPT = "receipt", "Receipt"
        ADJUSTMENT = "adjustment", "Adjustment"
        CYCLE_COUNT = "cycle_count", "Cycle count"
        RESERVATION = "reservation", "Reservation"
        RELEASE = "release", "Release"
        SHIPMENT = "shipment", "Shipment"
        TRANSFER_OUT = "transfer_out", "Transfer out"
        TRANSFER_IN = "transfer_in", "Transfer in"
        RETURN_RESTOCK = "return_restock", "Return restock"
        WRITE_OFF = "write_off", "Write-off"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="+")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="+")
    on_hand_delta = models.IntegerField(default=0)
    reserved_delta = models.IntegerField(default=0)
    reason = models.CharField(max_length=200, blank=True)
    reference = models.CharField(max_length=100, blank=True, db_index=True)
    idempotency_key = models.CharField(max_length=100, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=100, blank=True, help_text="System actor name.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["sku", "warehouse", "id"], name="movement_sku_wh_idx"),
            models.Index(fields=["idempotency_key"], name="movement_idem_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.sku_id}@{self.warehouse_id} {self.on_hand_delta:+d}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise LedgerAppendOnly("the stock movement ledger is append-only (UPDATE refused)")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LedgerAppendOnly("the stock movement ledger is append-only (DELETE refused)")


class IdempotencyRecord(models.Model):
    """A stock operation applied once under a caller's key; a retry with the key is a no-op."""

    key = models.CharField(max_length=100, unique=True)
    operation = models.CharField(max_length=40)
    reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class Reservation(models.Model):
    """Stock held for a reference (an order) and one of its lines, in one warehouse."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RELEASED = "released", "Released"
        CONSUMED = "consumed", "Consumed (shipped)"

    # Every reservation writes each index below, so only those a query uses are kept: by
    # reference (an order's), active by stock level, by SKU and by the ordered SKU.
    reference = models.CharField(max_length=100)
    line_reference = models.CharField(max_length=100, blank=True)
    stock_level = models.ForeignKey(
        StockLevel, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="+")
    warehouse = models.ForeignKey(
        Warehouse, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    requested_sku = models.ForeignKey(
        SKU,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The SKU ordered: a bundle when this row holds one of its components.",
    )
    units_per_item = models.PositiveIntegerField(default=1)
    quantity = models.PositiveIntegerField(help_text="Units still held.")
    quantity_consumed = models.PositiveIntegerField(default=0)
    quantity_released = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["reference"], name="reservation_reference_idx"),
            models.Index(
                fields=["stock_level"],
                condition=Q(status="active"),
                name="reservation_active_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="active", quantity__gt=0) | ~Q(status="active"),
                name="reservation_active_holds_units",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.quantity} x {self.sku_id}"


class StockDiscrepancy(models.Model):
    """A counter found to differ from the ledger by the integrity check, and its repair."""

    stock_level = models.ForeignKey(StockLevel, on_delete=models.PROTECT, related_name="+")
    field = models.CharField(max_length=10)
    counter_value = models.IntegerField()
    ledger_value = models.IntegerField()
    detected_at = models.DateTimeField(auto_now_add=True)
    repaired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "stock discrepancies"
        ordering = ["-detected_at"]

    def __str__(self) -> str:
        return f"{self.stock_level} {self.field}: {self.counter_value} != {self.ledger_value}"


class StockChange(models.Model):
    """Outbox row: this SKU's stock changed in this warehouse (written in the same transaction).

    Upper layers (the channel sync engine) consume and delete these rows; inventory never
    imports them.
    """

    sku = models.ForeignKey(SKU, on_delete=models.CASCADE, related_name="+")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sku_id}@{self.warehouse_id}"
