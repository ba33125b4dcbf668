"""Run every channel simulator, each on its own port, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import importlib
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels_app.simulators.base import SimulatorServer

# Fixed order: with --base-port, each kind always gets the same offset.
SIMULATORS = (
    ("amazon", "channels_app.simulators.amazon.AmazonSimulator"),
    ("shopify", "channels_app.simulators.shopify.ShopifySimulator"),
    ("ebay", "channels_app.simulators.ebay.EbaySimulator"),
    ("walmart", "channels_app.simulators.walmart.WalmartSimulator"),
    ("threepl", "channels_app.simulators.threepl.ThreePLSimulator"),
    ("carrier", "channels_app.simulators.carrier.CarrierSimulator"),
)
# Fulfilment services, not sales channels: no listings, seeded orders or shoppers.
SERVICES = frozenset({"threepl", "carrier"})
# Demo settings: a day of transit passes in a minute, and some of everything goes wrong.
DEMO_CARRIER = {"time_scale": 1440.0, "late_share": 0.1, "lost_share": 0.03}
DEMO_THREEPL = {
    "late_share": 0.1,
    "invalid_tracking_share": 0.05,
    "split_share": 0.2,
    "snapshot_drift": 0.1,
}


def _stock(text: str) -> dict[str, int]:
    """``"A=3,B=5"`` -> ``{"A": 3, "B": 5}``."""
    stock = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        sku, _, quantity = item.partition("=")
        if not quantity.isdigit():
            raise CommandError(f"--threepl-stock: {item!r} is not SKU=QTY")
        stock[sku] = int(quantity)
    return stock


def load_simulator(dotted: str) -> type[SimulatorServer] | None:
    """The simulator class, or None while its module does not exist yet."""
    module_name, class_name = dotted.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    return getattr(module, class_name)


class Command(BaseCommand):
    help = (
        "Start every channel simulator and print one line per simulator, "
        "'SIMULATOR <kind> <base_url>', then serve until interrupted."
    )
    # The simulators use nothing of Django's, so a half-configured project must not stop them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--base-port",
            type=int,
            default=0,
            help="first port; simulators take consecutive ports (0: any free ports)",
        )
        parser.add_argument("--seed-orders", type=int, default=0, metavar="N")
        parser.add_argument(
            "--shopper-rate",
            type=float,
            default=0.0,
            metavar="R",
            help="shopper orders per second on each simulator",
        )
        parser.add_argument(
            "--skus", default="", help="comma-separated SKU codes every simulator lists"
        )
        parser.add_argument(
            "--defect-share",
            type=float,
            default=0.0,
            metavar="S",
            help="share of orders whose buyer opens a chargeback or leaves negative feedback "
            "(Shopify, eBay, Amazon), checked every 30 seconds",
        )
        parser.add_argument(
            "--demo-limits",
            action="store_true",
            help="relax Amazon's order-search quota (0.0056/s) so a demo can poll every minute",
        )
        parser.add_argument(
            "--threepl-secret",
            default="demo-3pl-secret",
            help="the secret the 3PL signs with and checks (the warehouse's shared secret)",
        )
        parser.add_argument(
            "--threepl-delay",
            type=_seconds_range,
            default=(2.0, 10.0),
            metavar="MIN,MAX",
            help="seconds the 3PL takes to pick and pack an order (drawn uniformly)",
        )
        parser.add_argument(
            "--threepl-stock",
            default="",
            metavar="SKU=QTY,...",
            help="what the 3PL holds at start (it reports this in its stock snapshots)",
        )
        parser.add_argument(
            "--threepl-snapshot-every",
            type=float,
            default=None,
            metavar="SECONDS",
            help="how often the 3PL posts a stock snapshot (default: daily)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        skus = [code.strip() for code in options["skus"].split(",") if code.strip()] or None
        if options["seed_orders"] < 0 or options["shopper_rate"] < 0:
            raise CommandError("--seed-orders and --shopper-rate must not be negative")
        if not 0 <= options["defect_share"] <= 1:
            raise CommandError("--defect-share must be between 0 and 1")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        built: dict[str, tuple[int, SimulatorServer]] = {}
        for offset, (kind, dotted) in enumerate(SIMULATORS):
            simulator_class = load_simulator(dotted)
            if simulator_class is not None:
                built[kind] = (offset, simulator_class(**self._settings(kind, options)))
        if "threepl" in built and "carrier" in built:
            # The 3PL asks this carrier for labels, so the carrier can track its parcels.
            built["threepl"][1].carrier = built["carrier"][1]
        running: list[SimulatorServer] = []
        try:
            for kind, (offset, simulator) in built.items():
                port = options["base_port"] + offset if options["base_port"] else 0
                base_url = simulator.start(host=options["host"], port=port)
                running.append(simulator)
                if kind not in SERVICES:
                    self._populate(simulator, skus=skus, options=options)
                if kind == "threepl":
                    for sku, quantity in _stock(options["threepl_stock"]).items():
                        simulator.set_stock(sku, quantity)
                self.stdout.write(f"SIMULATOR {kind} {base_url}")
                self.stdout.flush()
            stop.wait()
        finally:
            for simulator in running:
                simulator.stop()

    @staticmethod
    def _settings(kind: str, options: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments for one simulator."""
        if kind == "threepl":
            settings = {
                **DEMO_THREEPL,
                "secret": options["threepl_secret"],
                "pick_delay": options["threepl_delay"],
            }
            if options["threepl_snapshot_every"]:
                settings["snapshot_interval"] = options["threepl_snapshot_every"]
            return settings
        if kind == "carrier":
            return dict(DEMO_CARRIER)
        if not (options["demo_limits"] and kind == "amazon"):
            return {}
        from channels_app.simulators.amazon import AMAZON_RATE_LIMITS

        return {"rate_limits": {**AMAZON_RATE_LIMITS, "searchOrders": (1.0, 20)}}

    def _populate(
        self, simulator: SimulatorServer, *, skus: list[str] | None, options: dict[str, Any]
    ) -> None:
        if skus:
            simulator.ensure_listings(skus)
        if options["seed_orders"]:
            simulator.seed_orders(options["seed_orders"], skus=skus)
        if options["shopper_rate"]:
            if not simulator.listings:
                simulator.ensure_listings()
            simulator.start_shoppers(options["shopper_rate"], skus)
        if options["defect_share"]:
            simulator.start_defects(options["defect_share"])


def _seconds_range(value: str) -> tuple[float, float]:
    """``MIN,MAX`` (or one number for a fixed delay) as seconds, 0 <= MIN <= MAX."""
    try:
        parts = [float(part) for part in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 0 <= parts[0] <= parts[1]:
        raise argparse.ArgumentTypeError(
            f"expected MIN,MAX seconds with 0 <= MIN <= MAX: {value!r}"
        )
    return parts[0], parts[1]
