from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from inventory.exceptions import DomainError

CONFLICT_CODES = {
    "insufficient_stock",
    "invalid_transition",
    "conflict",
    "idempotency_conflict",
    "not_shippable",
}


def domain_exception_handler(exc, context):
    """Turn a ``DomainError`` into a 400 (bad request) or 409 (state conflict) with its code."""
    if isinstance(exc, DomainError):
        http_status = (
            status.HTTP_409_CONFLICT if exc.code in CONFLICT_CODES else status.HTTP_400_BAD_REQUEST
        )
        body = {"code": exc.code, "detail": exc.message}
        body.update({k: v for k, v in exc.extra.items() if _is_jsonable(v)})
        return Response(body, status=http_status)
    return exception_handler(exc, context)


def _is_jsonable(value) -> bool:
    return isinstance(value, str | int | float | bool | list | dict | tuple | type(None))
