"""Channel-neutral order records: what a channel connector hands to order ingestion.

Connectors map each channel's wire format into these frozen dataclasses; the ingestion
service (``oms.services.ingestion``) takes nothing else. Money is ``Decimal`` in the
order's currency, times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


class FulfillmentModel:
    FBA = "FBA"
    FBM = "FBM"
    SFP = "SFP"


class ChannelOrderStatus:
    """The channel's own view of an order, normalised."""

    PENDING = "pending"  # placed, payment not yet confirmed
    UNSHIPPED = "unshipped"  # paid, waiting to be shipped
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class AddressRecord:
    name: str = ""
    line1: str = ""
    line2: str = ""
    line3: str = ""
    city: str = ""
    region: str = ""  # state, province or county
    postal_code: str = ""
    country_code: str = ""  # ISO 3166-1 alpha-2
    phone: str = ""

    @property
    def is_complete(self) -> bool:
        return bool(self.line1 and self.city and self.postal_code and self.country_code)


@dataclass(frozen=True)
class OrderLineRecord:
    channel_line_id: str
    seller_sku: str
    quantity: int
    unit_price: Decimal = Decimal("0")
    quantity_shipped: int = 0
    quantity_cancelled: int = 0
    title: str = ""


@dataclass(frozen=True)
class OrderRecord:
    channel_order_id: str
    status: str
    purchased_at: datetime
    lines: tuple[OrderLineRecord, ...]
    fulfillment_model: str = FulfillmentModel.FBM
    updated_at: datetime | None = None
    earliest_ship_at: datetime | None = None
    latest_ship_at: datetime | None = None
    latest_delivery_at: datetime | None = None
    is_prime: bool = False
    service_level: str = ""
    buyer_name: str = ""
    buyer_email: str = ""
    ship_to: AddressRecord | None = None
    currency: str = "USD"
    total: Decimal = Decimal("0")
    shipping_total: Decimal = Decimal("0")
    tax_total: Decimal = Decimal("0")
    cancel_reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
