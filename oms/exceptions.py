"""Order-domain errors; all are ``DomainError`` with a stable ``code``."""

from inventory.exceptions import DomainError, InsufficientStock

__all__ = ["DomainError", "InsufficientStock", "InvalidTransition", "OrderError"]


class InvalidTransition(DomainError):
    code = "invalid_transition"


class OrderError(DomainError):
    code = "order_error"
