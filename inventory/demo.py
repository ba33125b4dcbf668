"""Demo inventory: warehouses of every kind, SKUs with real GTINs, a bundle, and stock."""

from __future__ import annotations

import datetime

from . import services
from .models import SKU, BundleComponent, CarrierPickup, StockLevel, Warehouse

WAREHOUSES = [
    # code, name, kind, time zone, country
    ("nyc", "New York warehouse", Warehouse.Kind.OWN, "America/New_York", "US"),
    ("ship-3pl", "ShipFast 3PL (Reno)", Warehouse.Kind.THREE_PL, "America/Los_Angeles", "US"),
    ("fba-us", "Amazon FBA (US)", Warehouse.Kind.FBA, "America/Los_Angeles", "US"),
    ("returns", "Returns quarantine", Warehouse.Kind.QUARANTINE, "America/New_York", "US"),
]

# warehouse, carrier, service levels, cut-off, weekdays, default
PICKUPS = [
    ("nyc", "USPS", "Standard", datetime.time(15, 0), "01234", True),
    ("nyc", "UPS", "Expedited, SecondDay, NextDay, Priority", datetime.time(17, 30), "01234",
     False),
    ("ship-3pl", "FedEx", "", datetime.time(16, 0), "012345", True),
]  # fmt: skip

SKUS = [
    # code, title, GTIN-13, grams, category
    ("MUG-BLK", "Enamel camp mug, black", "4006381333931", 310, "kitchen"),
    ("MUG-WHT", "Enamel camp mug, white", "5901234123457", 310, "kitchen"),
    ("LID-SIL", "Silicone mug lid", "4012345678901", 40, "kitchen"),
    ("TEE-M", "Organic cotton tee, M", "0012345678905", 180, "fashion"),
    ("TEE-L", "Organic cotton tee, L", "0036000291452", 190, "fashion"),
    ("CAP-OLV", "Canvas cap, olive", "0042100005264", 90, "fashion"),
    ("BTL-750", "Steel bottle 750 ml", "0075678164125", 420, "outdoor"),
    ("LAMP-USB", "USB camp lantern", "0088442150059", 260, "outdoor"),
]

# (sku, warehouse, quantity, bin)
STOCK = [
    ("MUG-BLK", "nyc", 40, "A-01-1"),
    ("MUG-WHT", "nyc", 25, "A-01-2"),
    ("LID-SIL", "nyc", 60, "A-02-1"),
    ("TEE-M", "nyc", 30, "B-03-1"),
    ("TEE-L", "nyc", 12, "B-03-2"),
    ("CAP-OLV", "nyc", 8, "B-04-1"),
    ("BTL-750", "ship-3pl", 50, "R-10"),
    ("LAMP-USB", "ship-3pl", 20, "R-11"),
    ("MUG-BLK", "ship-3pl", 15, "R-12"),
    ("MUG-BLK", "fba-us", 120, ""),
    ("BTL-750", "fba-us", 80, ""),
]


def seed_inventory() -> None:
    """Create the demo inventory; safe to run again (receipts carry idempotency keys)."""
    warehouses = {}
    for code, name, kind, tz, country in WAREHOUSES:
        warehouses[code], _ = Warehouse.objects.get_or_create(
            code=code, defaults={"name": name, "kind": kind, "time_zone": tz, "country": country}
        )
    # Only for a warehouse with no pickups yet: staff may have set their own since.
    unscheduled = set(
        Warehouse.objects.filter(code__in=list(warehouses), pickups__isnull=True).values_list(
            "code", flat=True
        )
    )
    CarrierPickup.objects.bulk_create(
        CarrierPickup(
            warehouse=warehouses[code],
            carrier=carrier,
            services=names,
            cutoff=cutoff,
            weekdays=weekdays,
            is_default=is_default,
        )  # fmt: skip
        for code, carrier, names, cutoff, weekdays, is_default in PICKUPS
        if code in unscheduled
    )
    skus = {}
    for code, title, gtin, grams, category in SKUS:
        skus[code], _ = SKU.objects.get_or_create(
            code=code,
            defaults={"title": title, "barcode": gtin, "weight_grams": grams, "category": category},
        )
    kit, _ = SKU.objects.get_or_create(
        code="KIT-MUG2",
        defaults={
            "title": "Gift set: 2 mugs + lid",
            "kind": SKU.Kind.BUNDLE,
            "category": "kitchen",
        },
    )
    for component, quantity in (("MUG-BLK", 2), ("LID-SIL", 1)):
        BundleComponent.objects.get_or_create(
            bundle=kit, component=skus[component], defaults={"quantity": quantity}
        )
    for sku, warehouse, quantity, bin_location in STOCK:
        services.stock_receive(
            sku=skus[sku],
            warehouse=warehouses[warehouse],
            quantity=quantity,
            reference="opening stock",
            actor="seed_demo",
            idempotency_key=f"seed-demo:{sku}:{warehouse}",
        )
        if bin_location:
            StockLevel.objects.filter(sku=skus[sku], warehouse=warehouses[warehouse]).update(
                bin_location=bin_location
            )
