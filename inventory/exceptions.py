"""Domain errors. Every service raises a ``DomainError`` with a stable ``code``.

``DomainError`` lives here because ``inventory`` is the lowest layer: the other apps import it
from here (via their own ``exceptions`` modules) and never the other way round.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; ``code`` is stable, ``message`` is for people."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None, **extra):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra

    def __str__(self) -> str:
        return self.message


class InvalidQuantity(DomainError):
    code = "invalid_quantity"


class UnknownSKU(DomainError):
    code = "unknown_sku"


class UnknownWarehouse(DomainError):
    code = "unknown_warehouse"


class InvalidStockOperation(DomainError):
    code = "invalid_stock_operation"


class InsufficientStock(DomainError):
    """Raised when a reservation, transfer or adjustment needs more than is available.

    ``shortages`` maps each short SKU code to ``(requested, available)``.
    """

    code = "insufficient_stock"

    def __init__(self, shortages: dict[str, tuple[int, int]], *, warehouse_code: str = ""):
        self.shortages = dict(sorted(shortages.items()))
        detail = ", ".join(
            f"{code} (requested {req}, available {avail})"
            for code, (req, avail) in self.shortages.items()
        )
        where = f" in {warehouse_code}" if warehouse_code else ""
        super().__init__(f"Insufficient stock{where}: {detail}", shortages=self.shortages)

    @property
    def skus(self) -> list[str]:
        return list(self.shortages)
