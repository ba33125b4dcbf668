"""Carrier registry and tracking numbers. Valid numbers follow each carrier's published format
and check digit; each near miss changes one character of a valid number."""

import pytest

from oms.carriers import (
    CARRIERS,
    CarrierNameRequired,
    InvalidTrackingNumber,
    UnknownCarrier,
    carrier_choices,
    carrier_get,
    tracking_url,
    tracking_validate,
)

VALID = [
    ("UPS", "1Z5R89390357567127"),
    ("UPS", "1Z879E930346834440"),
    ("UPS", "1Z410E7W0392751591"),
    ("UPS", "1Z999AA10123456784"),
    ("USPS", "9400111201080805483016"),
    ("USPS", "9361289878700317633795"),
    ("USPS", "9405803699300124287899"),
    ("USPS", "9505511069605048600624"),
    ("USPS", "9261292700768711948021"),
    ("USPS", "92748931507708513018050063"),
    ("USPS", "03071790000523483741"),
    ("USPS", "71969010756003077385"),  # legacy 20 digits, check covers a dropped "91"
    ("USPS", "EA123456785US"),
    ("USPS", "VA102836451US"),
    ("FEDEX", "986578788855"),
    ("FEDEX", "799531274483"),
    ("FEDEX", "477179081230"),
    ("FEDEX", "041441760228964"),
    ("FEDEX", "568283610012734"),
    ("FEDEX", "61299998820821171811"),
    ("FEDEX", "9611020987654312345672"),
    ("FEDEX", "9261292700768711948021"),
    ("DHL", "3318810025"),
    ("DHL", "8487135506"),
    ("DHL", "1099255990"),
    ("AMAZON", "TBA502887274000"),
    ("ROYAL_MAIL", "RB204189378GB"),
    ("ROYAL_MAIL", "KE330719522GB"),
    ("DPD", "15501234567890"),
    ("ONTRAC", "C11031500001879"),
    ("ONTRAC", "D10011354453707"),
    ("CANADA_POST", "0073938000549297"),
    ("CANADA_POST", "CP072165980CA"),
    ("OTHER", "ZX9000123"),
]

NEAR_MISSES = [
    ("UPS", "1Z5R89390357567128", "check digit"),
    ("UPS", "1Z5R89390357567137", "check digit"),
    ("UPS", "2Z5R89390357567127", "format"),
    ("USPS", "9400111201080805483017", "check digit"),
    ("USPS", "9400111201080805483116", "check digit"),
    ("USPS", "03071790000523483742", "check digit"),
    ("USPS", "EA123456784US", "check digit"),
    ("USPS", "EA123456785GB", "format"),  # Royal Mail's S10 suffix
    ("USPS", "8400111201080805483016", "format"),
    ("FEDEX", "986578788856", "check digit"),
    ("FEDEX", "996578788855", "check digit"),
    ("FEDEX", "568283610012732", "check digit"),
    ("FEDEX", "61299998820821171812", "check digit"),
    ("FEDEX", "9611020987654312345673", "check digit"),
    ("FEDEX", "9261292700768711948020", "check digit"),
    ("FEDEX", "98657878885", "format"),
    ("DHL", "3318810026", "check digit"),
    ("DHL", "3318810034", "check digit"),
    ("DHL", "33188100251", "format"),
    ("AMAZON", "TBA50288727400", "format"),
    ("AMAZON", "TBB502887274000", "format"),
    ("ROYAL_MAIL", "RB204189379GB", "check digit"),
    ("ROYAL_MAIL", "RB204189378US", "format"),
    ("DPD", "1550123456789", "format"),
    ("ONTRAC", "C11031500001889", "check digit"),
    ("ONTRAC", "D10011354453708", "check digit"),
    ("ONTRAC", "E11031500001879", "format"),
    ("CANADA_POST", "0073938000549292", "check digit"),
    ("CANADA_POST", "CP072165981CA", "check digit"),
    ("OTHER", "AB12", "format"),
    ("OTHER", "ZX9000123/4", "format"),
]


@pytest.mark.parametrize(("carrier_code", "tracking_number"), VALID)
def test_valid_tracking_numbers_pass(carrier_code, tracking_number):
    assert (
        tracking_validate(
            carrier_code=carrier_code, tracking_number=tracking_number, carrier_name="Evri"
        )
        == tracking_number
    )


@pytest.mark.parametrize(("carrier_code", "tracking_number", "problem"), NEAR_MISSES)
def test_near_misses_fail_naming_carrier_and_format(carrier_code, tracking_number, problem):
    carrier = carrier_get(carrier_code)

    with pytest.raises(InvalidTrackingNumber) as raised:
        tracking_validate(
            carrier_code=carrier_code, tracking_number=tracking_number, carrier_name="Evri"
        )

    assert raised.value.code == "invalid_tracking_number"
    assert problem in raised.value.message
    assert carrier.name in raised.value.message
    assert carrier.format_description in raised.value.message


def test_tracking_number_is_normalised():
    assert (
        tracking_validate(carrier_code="ups", tracking_number=" 1z 5r89-3903 5756\t7127 ")
        == "1Z5R89390357567127"
    )
    assert (
        tracking_validate(carrier_code="USPS", tracking_number="9400 1112 0108 0805 4830 16")
        == "9400111201080805483016"
    )
    assert tracking_validate(carrier_code="AMAZON", tracking_number="tba-502887274000") == (
        "TBA502887274000"
    )


def test_empty_tracking_number_is_invalid():
    with pytest.raises(InvalidTrackingNumber, match="not a valid UPS tracking number"):
        tracking_validate(carrier_code="UPS", tracking_number="  ")


def test_other_carrier_needs_a_carrier_name():
    with pytest.raises(CarrierNameRequired) as raised:
        tracking_validate(carrier_code="OTHER", tracking_number="ZX9000123", carrier_name=" ")

    assert raised.value.code == "carrier_name_required"


def test_unknown_carrier_lists_known_codes():
    with pytest.raises(UnknownCarrier) as raised:
        carrier_get("Pigeon Post")

    assert raised.value.code == "unknown_carrier"
    assert "Unknown carrier 'Pigeon Post'" in raised.value.message
    for carrier in CARRIERS:
        assert carrier.code in raised.value.message


def test_tracking_validate_with_unknown_carrier_raises_unknown_carrier():
    with pytest.raises(UnknownCarrier):
        tracking_validate(carrier_code="NOPE", tracking_number="1Z5R89390357567127")


@pytest.mark.parametrize(
    ("lookup", "code"),
    [
        ("FedEx", "FEDEX"),
        ("fedex", "FEDEX"),
        ("Amazon Shipping", "AMAZON"),
        ("amazon", "AMAZON"),
        ("Royal Mail", "ROYAL_MAIL"),
        ("royal_mail", "ROYAL_MAIL"),
        ("DHL", "DHL"),
        ("Canada Post", "CANADA_POST"),
        ("OnTrac", "ONTRAC"),
        (" usps ", "USPS"),
        ("Other", "OTHER"),
    ],
)
def test_carrier_get_accepts_our_code_or_amazons(lookup, code):
    assert carrier_get(lookup).code == code


def test_codes_and_amazon_codes_do_not_collide():
    keys = [key for c in CARRIERS for key in {c.code.casefold(), c.amazon_carrier_code.casefold()}]

    assert len(keys) == len(set(keys))


def test_carrier_choices_list_every_carrier_with_other_last():
    choices = carrier_choices()

    assert choices[0] == ("UPS", "UPS")
    assert choices[-1] == ("OTHER", "Other carrier")
    assert [code for code, _ in choices] == [c.code for c in CARRIERS]


def test_tracking_url_uses_the_normalised_number():
    assert tracking_url("ups", "1z5r 8939 0357 5671 27") == (
        "https://www.ups.com/track?tracknum=1Z5R89390357567127"
    )
    assert tracking_url("Amazon Shipping", "TBA502887274000") == (
        "https://track.amazon.com/tracking/TBA502887274000"
    )


def test_tracking_url_is_empty_for_other():
    assert tracking_url("OTHER", "ZX9000123") == ""
