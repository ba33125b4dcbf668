from django.core.exceptions import ValidationError


def gtin_is_valid(value: str) -> bool:
    """True for a GTIN-8/12/13/14 whose last digit is its GS1 check digit."""
    if not value.isdigit() or len(value) not in (8, 12, 13, 14):
        return False
    digits = [int(d) for d in value]
    body, check = digits[:-1], digits[-1]
    weighted = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - weighted % 10) % 10 == check


def validate_gtin(value: str) -> None:
    if value and not gtin_is_valid(value):
        raise ValidationError(
            "%(value)s is not a valid GTIN: 8, 12, 13 or 14 digits with a GS1 check digit.",
            params={"value": value},
            code="invalid_gtin",
        )
