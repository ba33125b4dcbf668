"""Demo channels wired to the local simulators (``run_simulators --base-port 8101``)."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from channels_app.models import Channel, Listing, WarehouseConnection
from inventory.models import SKU, Warehouse
from oms.models import RoutingRule

SIMULATOR_BASE_PORT = 8101
KIND_ORDER = ["amazon", "shopify", "ebay", "walmart", "threepl", "carrier"]
THREEPL_SECRET = "demo-3pl-secret"

# The simulators' default credentials (see channels_app/INTERFACES.md).
SIMULATOR_CREDENTIALS = {
    "amazon": {
        "refresh_token": "Atzr|demo-refresh-token",
        "lwa_app_id": "amzn1.application-oa2-client.demo",
        "lwa_client_secret": "demo-lwa-secret",
    },
    "shopify": {"access_token": "shpat_simulator", "webhook_secret": "demo-webhook-secret"},
    "ebay": {
        "client_id": "sim-app-id",
        "client_secret": "sim-cert-id",
        "refresh_token": "v^1.1#i^1#r^1#sim-refresh",
    },
    "walmart": {"client_id": "sim-walmart-client", "client_secret": "sim-walmart-secret"},
}
SIMULATOR_SETTINGS = {
    "amazon": {"seller_id": "A1SIMSELLER0001", "poll_interval": 1},
    "shopify": {"location_id": "655441491"},
    "ebay": {},
    "walmart": {},
}
CHANNEL_NAMES = {
    "amazon": ("amazon-us", "Amazon US", "ATVPDKIKX0DER"),
    "shopify": ("shopify", "Webshop (Shopify)", ""),
    "ebay": ("ebay-us", "eBay US", "EBAY_US"),
    "walmart": ("walmart-us", "Walmart US", ""),
}
DEMO_LISTED_SKUS = [
    "MUG-BLK",
    "MUG-WHT",
    "LID-SIL",
    "TEE-M",
    "TEE-L",
    "CAP-OLV",
    "BTL-750",
    "LAMP-USB",
    "KIT-MUG2",
]
PRICES = {
    "MUG-BLK": "14.90",
    "MUG-WHT": "14.90",
    "LID-SIL": "4.50",
    "TEE-M": "24.00",
    "TEE-L": "24.00",
    "CAP-OLV": "19.00",
    "BTL-750": "22.00",
    "LAMP-USB": "29.00",
    "KIT-MUG2": "32.00",
}


def simulator_url(kind: str, *, host: str = "127.0.0.1", base_port: int = SIMULATOR_BASE_PORT):
    return f"http://{host}:{base_port + KIND_ORDER.index(kind)}"


@transaction.atomic
def channel_connect_simulator(
    *, kind: str, base_url: str, code: str | None = None, extra: dict | None = None
) -> Channel:
    """Create (or re-point) a channel of ``kind`` at a simulator, with its demo credentials."""
    default_code, name, marketplace = CHANNEL_NAMES[kind]
    channel, _ = Channel.objects.get_or_create(
        code=code or default_code,
        defaults={"kind": kind, "name": name, "marketplace": marketplace},
    )
    channel.base_url = base_url
    channel.settings_json = {**SIMULATOR_SETTINGS[kind], **(extra or {})}
    channel.set_credentials(SIMULATOR_CREDENTIALS[kind])
    channel.safe_for_last_units = kind == "shopify"
    channel.save()
    return channel


def seed_channels(*, base_port: int = SIMULATOR_BASE_PORT) -> list[Channel]:
    """Demo channels on the simulators, listings for the demo SKUs, routing to the warehouses."""
    channels = []
    own = Warehouse.objects.filter(code="nyc").first()
    threepl = Warehouse.objects.filter(code="ship-3pl").first()
    fba = Warehouse.objects.filter(code="fba-us").first()
    if threepl:
        connection, _ = WarehouseConnection.objects.get_or_create(warehouse=threepl)
        connection.mode = WarehouseConnection.Mode.API
        connection.endpoint_url = simulator_url("threepl", base_port=base_port)
        connection.set_secret(THREEPL_SECRET)
        connection.save()
    for kind in KIND_ORDER[:4]:
        channel = channel_connect_simulator(
            kind=kind, base_url=simulator_url(kind, base_port=base_port)
        )
        if kind == "amazon" and fba:
            channel.fba_warehouse = fba
            channel.save(update_fields=["fba_warehouse"])
        for priority, warehouse in enumerate(w for w in (own, threepl) if w):
            RoutingRule.objects.get_or_create(
                channel=channel, warehouse=warehouse, defaults={"priority": priority + 1}
            )
        for sku in SKU.objects.filter(code__in=DEMO_LISTED_SKUS):
            Listing.objects.get_or_create(
                channel=channel,
                seller_sku=sku.code,
                defaults={"sku": sku, "price": Decimal(PRICES[sku.code])},
            )
        channels.append(channel)
    return channels
