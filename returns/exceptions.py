from inventory.exceptions import DomainError

__all__ = ["DomainError", "InvalidReturnTransition", "ReturnError"]


class ReturnError(DomainError):
    code = "return_error"


class InvalidReturnTransition(DomainError):
    code = "invalid_transition"
