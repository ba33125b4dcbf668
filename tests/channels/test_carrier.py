"""Carrier tracking client and simulator over real HTTP: labels, scans over time, lost parcels."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from channels_app.connectors.base import ConnectorPermanentError, ConnectorRetryableError
from channels_app.connectors.carrier import CarrierTrackingClient, TrackingResult
from channels_app.connectors.http import RetryPolicy
from channels_app.simulators.base import SimulatorError
from channels_app.simulators.carrier import DAY, CarrierSimulator
from oms.carriers import tracking_validate

FAST = RetryPolicy(max_attempts=3, base_delay=0.01)
JOURNEY = ["accepted", "in_transit", "out_for_delivery", "delivered"]


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_carrier(clock: FakeClock) -> Iterator:
    started: list[CarrierSimulator] = []

    def make(**settings: object) -> CarrierSimulator:
        simulator = CarrierSimulator(seed=11, clock=clock, **settings)
        simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


def label(carrier: CarrierSimulator, service: str = "Standard") -> dict:
    request = urllib.request.Request(
        f"{carrier.base_url}/labels",
        data=json.dumps(
            {"service": service, "ship_to": {"city": "Austin", "region": "TX"}}
        ).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
        return json.loads(response.read())


def statuses(result: TrackingResult) -> list[str]:
    """Event statuses with repeats collapsed (several in-transit scans read as one step)."""
    steps: list[str] = []
    for event in result.events:
        if not steps or steps[-1] != event.status:
            steps.append(event.status)
    return steps


def test_labels_are_valid_ups_numbers_the_carrier_tracks(make_carrier) -> None:
    carrier = make_carrier()
    issued = label(carrier)
    assert issued["carrier_code"] == "UPS" and issued["service"] == "UPS Ground"
    number = tracking_validate(carrier_code="UPS", tracking_number=issued["tracking_number"])
    assert number == issued["tracking_number"]

    result = CarrierTrackingClient(carrier.base_url, retry=FAST).track(number)
    assert result is not None
    assert (result.tracking_number, result.carrier_code, result.status) == (
        number,
        "UPS",
        "accepted",
    )
    assert [event.status for event in result.events] == ["accepted"]
    assert result.events[0].location and result.events[0].description
    assert result.estimated_delivery is not None
    # Ground, at time_scale 1: three real days.
    assert (result.estimated_delivery - result.events[0].at).total_seconds() == pytest.approx(
        3 * DAY, abs=0.01
    )


def test_unknown_number_is_none(make_carrier) -> None:
    carrier = make_carrier()
    client = CarrierTrackingClient(carrier.base_url, retry=FAST)
    assert client.track("1Z999AA10123456784") is None
    issued = label(carrier)["tracking_number"]
    mistyped = issued[:-1] + str((int(issued[-1]) + 1) % 10)
    assert client.track(mistyped) is None
    assert client.track(issued.lower()) is not None  # numbers are read case-insensitively


def test_scans_progress_as_time_passes_with_time_scale(make_carrier, clock: FakeClock) -> None:
    carrier = make_carrier(time_scale=86_400)  # a simulated day per real second
    client = CarrierTrackingClient(carrier.base_url, retry=FAST)
    number = label(carrier, service="Standard")["tracking_number"]

    seen = [client.track(number).status]
    for _ in range(40):  # ten-second steps: over four simulated days
        clock.advance(0.1)
        seen.append(client.track(number).status)
    assert [step for i, step in enumerate(seen) if i == 0 or seen[i - 1] != step] == JOURNEY

    result = client.track(number)
    assert statuses(result) == JOURNEY
    assert [event.at for event in result.events] == sorted(event.at for event in result.events)
    delivered = result.events[-1]
    assert delivered.location == "Austin, TX"
    assert delivered.at <= result.estimated_delivery  # on time
    assert (result.estimated_delivery - result.events[0].at).total_seconds() == pytest.approx(
        3, abs=0.01
    )  # Ground: three simulated days, three real seconds
    assert delivered.at <= datetime.fromtimestamp(clock.now, UTC)


def test_time_scale_runs_on_the_real_clock_too() -> None:
    carrier = CarrierSimulator(seed=2, time_scale=10 * DAY)  # a day in 0.1 s
    carrier.start()
    try:
        client = CarrierTrackingClient(carrier.base_url, retry=FAST)
        number = label(carrier, service="NextDay")["tracking_number"]
        deadline = time.monotonic() + 2
        while (result := client.track(number)).status != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert statuses(result) == JOURNEY
        assert result.events[-1].at <= datetime.now(UTC)
    finally:
        carrier.stop()


def test_service_levels_pick_transit_days(make_carrier) -> None:
    carrier = make_carrier()
    for service, name, days in (
        ("NextDay", "UPS Next Day Air", 1),
        ("SecondDay", "UPS 2nd Day Air", 2),
        ("Expedited", "UPS 2nd Day Air", 2),
        ("", "UPS Ground", 3),
    ):
        issued = label(carrier, service=service)
        assert issued["service"] == name
        parcel = carrier.parcels[issued["tracking_number"]]
        assert parcel.estimated_delivery - parcel.issued_at == pytest.approx(days * DAY)


def test_late_parcels_are_delivered_after_the_estimate(make_carrier, clock: FakeClock) -> None:
    carrier = make_carrier(time_scale=DAY, late_share=1.0)
    client = CarrierTrackingClient(carrier.base_url, retry=FAST)
    number = label(carrier)["tracking_number"]
    clock.advance(2.99)  # just before the estimate: still on the road
    assert client.track(number).status == "in_transit"
    clock.advance(3)
    result = client.track(number)
    assert statuses(result) == JOURNEY
    assert result.events[-1].at > result.estimated_delivery
    assert any("Delayed" in event.description for event in result.events)


def test_lost_parcels_stay_in_transit_then_raise_an_exception(
    make_carrier, clock: FakeClock
) -> None:
    carrier = make_carrier(time_scale=DAY, lost_share=1.0)  # a day per real second
    client = CarrierTrackingClient(carrier.base_url, retry=FAST)
    number = label(carrier)["tracking_number"]
    clock.advance(4)  # a day past the estimate
    assert client.track(number).status == "in_transit"
    clock.advance(2)
    result = client.track(number)
    assert result.status == "exception"
    assert statuses(result) == ["accepted", "in_transit", "exception"]


def test_shares_split_parcels_by_fate(make_carrier) -> None:
    carrier = make_carrier(late_share=0.3, lost_share=0.1)
    fates = Counter(carrier.issue_label().fate for _ in range(1000))
    assert 240 < fates["late"] < 360
    assert 60 < fates["lost"] < 140
    assert fates["on_time"] == 1000 - fates["late"] - fates["lost"]
    with pytest.raises(SimulatorError, match="at most 1"):
        carrier.configure(late_share=0.8, lost_share=0.5)


def test_faults_and_rate_limits_reach_the_client(make_carrier) -> None:
    carrier = make_carrier()
    number = label(carrier)["tracking_number"]
    client = CarrierTrackingClient(carrier.base_url, retry=FAST)
    carrier.faults.update({"error_next": 2})
    assert client.track(number) is not None  # retried through two 503s

    throttled = make_carrier(rate_limits={"track": (0.01, 1), "labels": (10, 10)})
    number = label(throttled)["tracking_number"]
    client = CarrierTrackingClient(throttled.base_url, retry=FAST)
    client.track(number)
    with pytest.raises(ConnectorRetryableError) as limited:
        client.track(number)
    assert limited.value.status_code == 429


def test_a_wrong_base_url_is_not_an_unknown_number(make_carrier) -> None:
    carrier = make_carrier()
    client = CarrierTrackingClient(f"{carrier.base_url}/v2", retry=FAST)
    with pytest.raises(ConnectorPermanentError) as wrong:
        client.track("1Z999AA10123456784")
    assert wrong.value.status_code == 404
