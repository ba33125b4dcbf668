"""Carriers we ship with, their Amazon carrier codes and their tracking-number formats.

A tracking number the carrier does not recognise costs Valid Tracking Rate, so numbers are
checked against the carrier's format and, where the carrier publishes one, its check digit
before a shipment is confirmed to a channel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from inventory.exceptions import DomainError


class UnknownCarrier(DomainError):
    code = "unknown_carrier"


class InvalidTrackingNumber(DomainError):
    code = "invalid_tracking_number"


class CarrierNameRequired(DomainError):
    code = "carrier_name_required"


@dataclass(frozen=True)
class Carrier:
    """One carrier. ``check`` gets a normalised number that matched one of
    ``tracking_patterns`` and says whether its check digit is right; ``None`` means the
    carrier has no check digit we can verify. ``tracking_url_template`` has a
    ``{tracking_number}`` placeholder, or is empty when there is no public tracking page."""

    code: str
    name: str
    amazon_carrier_code: str
    tracking_patterns: tuple[re.Pattern[str], ...]
    check: Callable[[str], bool] | None
    tracking_url_template: str
    format_description: str
    requires_carrier_name: bool = False


def _digits(text: str) -> list[int]:
    return [int(char) for char in text]


def _gs1_mod10_ok(number: str) -> bool:
    # GS1 / IMpb: weights 3, 1, 3, ... from the digit next to the check digit leftwards.
    *body, check = _digits(number)
    total = sum(digit * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _s10_ok(number: str) -> bool:
    # UPU S10: two letters, eight serial digits weighted 8 6 4 2 3 5 9 7, check, country.
    total = sum(d * w for d, w in zip(_digits(number[2:10]), (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    check = {10: 0, 11: 5}.get(check, check)
    return check == int(number[10])


def _s10_pattern(country: str) -> re.Pattern[str]:
    return re.compile(rf"[A-Z]{{2}}\d{{9}}{country}")


def _ups_ok(number: str) -> bool:
    # Letters count as (ord - 3) % 10 (A=2 ... Z=7); every second character is doubled
    # without folding the digits, unlike Luhn.
    values = [int(c) if c.isdigit() else (ord(c) - 3) % 10 for c in number[2:17]]
    total = sum(value * (2 if i % 2 else 1) for i, value in enumerate(values))
    return (10 - total % 10) % 10 == int(number[17])


def _usps_ok(number: str) -> bool:
    if number[0].isalpha():
        return _s10_ok(number)
    # Older 20-digit labels drop the "91" application identifier that their check digit
    # still covers, while other 20-digit numbers are checked as printed. Nothing in the
    # number tells them apart, so either passes: rejecting a real number blocks shipment
    # confirmation, which costs more than letting about one typo in ten through.
    if len(number) == 20:
        return _gs1_mod10_ok(number) or _gs1_mod10_ok("91" + number)
    return _gs1_mod10_ok(number)


def _fedex_ok(number: str) -> bool:
    if len(number) == 12:
        # Express: weights 1, 3, 7 repeating from the digit next to the check digit leftwards.
        *body, check = _digits(number)
        total = sum(digit * (1, 3, 7)[i % 3] for i, digit in enumerate(reversed(body)))
        return total % 11 % 10 == check
    if len(number) == 20:
        # SmartPost prints the IMpb without its "92" application identifier.
        return _gs1_mod10_ok("92" + number)
    if number.startswith("96"):
        # The 22-digit Ground barcode ends with the 15-digit Ground number and its check.
        return _gs1_mod10_ok(number[-15:])
    return _gs1_mod10_ok(number)


def _dhl_express_ok(number: str) -> bool:
    return int(number[:9]) % 7 == int(number[9])


def _ontrac_ok(number: str) -> bool:
    # The prefix letter counts as a digit (C=4, D=5), as UPS maps letters; every second
    # value from the second is doubled without folding.
    values = [(ord(number[0]) - 3) % 10, *_digits(number[1:14])]
    total = sum(value * (2 if i % 2 else 1) for i, value in enumerate(values))
    return (10 - total % 10) % 10 == int(number[14])


def _canada_post_ok(number: str) -> bool:
    return _s10_ok(number) if number[0].isalpha() else _gs1_mod10_ok(number)


OTHER = "OTHER"

CARRIERS: tuple[Carrier, ...] = (
    Carrier(
        code="UPS",
        name="UPS",
        amazon_carrier_code="UPS",
        tracking_patterns=(re.compile(r"1Z[A-Z0-9]{15}\d"),),
        check=_ups_ok,
        tracking_url_template="https://www.ups.com/track?tracknum={tracking_number}",
        format_description="1Z followed by 16 letters or digits, the last being a check digit",
    ),
    Carrier(
        code="USPS",
        name="USPS",
        amazon_carrier_code="USPS",
        tracking_patterns=(
            re.compile(r"\d{20}"),
            re.compile(r"9[1-5]\d{20}"),
            re.compile(r"9[1-5]\d{24}"),
            _s10_pattern("US"),
        ),
        check=_usps_ok,
        tracking_url_template="https://tools.usps.com/go/TrackConfirmAction?tLabels={tracking_number}",
        format_description=(
            "20, 22 or 26 digits (IMpb such as 9400..., 9205..., 9361...) with a mod-10 check "
            "digit, or an international number such as EA123456785US"
        ),
    ),
    Carrier(
        code="FEDEX",
        name="FedEx",
        amazon_carrier_code="FedEx",
        tracking_patterns=(
            re.compile(r"\d{12}"),
            re.compile(r"\d{15}"),
            re.compile(r"\d{20}"),
            re.compile(r"9[26]\d{20}"),
        ),
        check=_fedex_ok,
        tracking_url_template="https://www.fedex.com/fedextrack/?trknbr={tracking_number}",
        format_description="12, 15, 20 or 22 digits ending in a check digit",
    ),
    Carrier(
        code="DHL",
        name="DHL Express",
        amazon_carrier_code="DHL",
        tracking_patterns=(re.compile(r"\d{10}"),),
        check=_dhl_express_ok,
        tracking_url_template=(
            "https://www.dhl.com/en/express/tracking.html?AWB={tracking_number}&brand=DHL"
        ),
        format_description="10 digits, the last being the first nine modulo 7",
    ),
    Carrier(
        code="AMAZON",
        name="Amazon Shipping",
        amazon_carrier_code="Amazon Shipping",
        tracking_patterns=(re.compile(r"TBA\d{12}"),),
        check=None,
        tracking_url_template="https://track.amazon.com/tracking/{tracking_number}",
        format_description="TBA followed by 12 digits",
    ),
    Carrier(
        code="ROYAL_MAIL",
        name="Royal Mail",
        amazon_carrier_code="Royal Mail",
        tracking_patterns=(_s10_pattern("GB"),),
        check=_s10_ok,
        tracking_url_template=(
            "https://www.royalmail.com/track-your-item#/tracking-results/{tracking_number}"
        ),
        format_description="2 letters, 9 digits with a check digit, then GB (AB123456785GB)",
    ),
    Carrier(
        code="DPD",
        name="DPD",
        amazon_carrier_code="DPD",
        # DPD's mod 37,36 check character travels on the label barcode, not in the
        # 14-digit parcel number sellers are given, so there is nothing to verify.
        tracking_patterns=(re.compile(r"\d{14}"),),
        check=None,
        tracking_url_template=(
            "https://www.dpdgroup.com/nl/mydpd/my-parcels/track?lang=en&parcelNumber={tracking_number}"
        ),
        format_description="14 digits",
    ),
    Carrier(
        code="ONTRAC",
        name="OnTrac",
        amazon_carrier_code="OnTrac",
        tracking_patterns=(re.compile(r"[CD]\d{14}"),),
        check=_ontrac_ok,
        tracking_url_template="https://www.ontrac.com/tracking/?number={tracking_number}",
        format_description="C or D followed by 14 digits, the last being a check digit",
    ),
    Carrier(
        code="CANADA_POST",
        name="Canada Post",
        amazon_carrier_code="Canada Post",
        tracking_patterns=(re.compile(r"\d{16}"), _s10_pattern("CA")),
        check=_canada_post_ok,
        tracking_url_template=(
            "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={tracking_number}"
        ),
        format_description=(
            "16 digits with a mod-10 check digit, or an international number such as EA123456785CA"
        ),
    ),
    Carrier(
        code=OTHER,
        name="Other carrier",
        amazon_carrier_code="Other",
        tracking_patterns=(re.compile(r"[A-Z0-9]{6,40}"),),
        check=None,
        tracking_url_template="",
        format_description="6 to 40 letters or digits",
        requires_carrier_name=True,
    ),
)

_BY_LOOKUP_KEY: dict[str, Carrier] = {
    key.casefold(): carrier
    for carrier in CARRIERS
    for key in (carrier.code, carrier.amazon_carrier_code)
}

_SEPARATORS = re.compile(r"[\s-]+")


def carrier_get(code: str) -> Carrier:
    """The carrier for our code or Amazon's carrier code, ignoring case and outer spaces.

    Raises ``UnknownCarrier`` listing our codes.
    """
    carrier = _BY_LOOKUP_KEY.get(code.strip().casefold())
    if carrier is None:
        known = ", ".join(c.code for c in CARRIERS)
        raise UnknownCarrier(f"Unknown carrier {code!r}; known carriers: {known}.", carrier=code)
    return carrier


def carrier_choices() -> list[tuple[str, str]]:
    """``(code, name)`` pairs for a form's choices, in registry order with OTHER last."""
    return [(carrier.code, carrier.name) for carrier in CARRIERS]


def _normalise(tracking_number: str) -> str:
    return _SEPARATORS.sub("", tracking_number).upper()


def tracking_validate(*, carrier_code: str, tracking_number: str, carrier_name: str = "") -> str:
    """The tracking number normalised (spaces and dashes removed, upper case) once it matches
    the carrier's format and check digit.

    ``carrier_name`` is required, and only used, for carriers with ``requires_carrier_name``
    (OTHER), because channels need to know who carries the parcel. Raises ``UnknownCarrier``,
    ``InvalidTrackingNumber`` naming the carrier and the format it expects, or
    ``CarrierNameRequired``.
    """
    carrier = carrier_get(carrier_code)
    if carrier.requires_carrier_name and not carrier_name.strip():
        raise CarrierNameRequired(
            f"Give the carrier's name with carrier {carrier.code}.", carrier=carrier.code
        )
    number = _normalise(tracking_number)
    if not any(pattern.fullmatch(number) for pattern in carrier.tracking_patterns):
        problem = "does not match the format"
    elif carrier.check is not None and not carrier.check(number):
        problem = "has a wrong check digit"
    else:
        return number
    raise InvalidTrackingNumber(
        f"{tracking_number!r} is not a valid {carrier.name} tracking number: it {problem}. "
        f"Expected {carrier.format_description}.",
        carrier=carrier.code,
        tracking_number=tracking_number,
    )


def tracking_url(carrier_code: str, tracking_number: str) -> str:
    """The carrier's public tracking page for the normalised number, or ``""`` when the
    carrier has none (OTHER). Does not validate the number, so old shipments still link."""
    template = carrier_get(carrier_code).tracking_url_template
    if not template:
        return ""
    return template.format(tracking_number=quote(_normalise(tracking_number), safe=""))
