"""Run every channel simulator, each on its own port, until SIGINT or SIGTERM."""

from __future__ import annotations

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
)


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
            "--demo-limits",
            action="store_true",
            help="relax Amazon's order-search quota (0.0056/s) so a demo can poll every minute",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        skus = [code.strip() for code in options["skus"].split(",") if code.strip()] or None
        if options["seed_orders"] < 0 or options["shopper_rate"] < 0:
            raise CommandError("--seed-orders and --shopper-rate must not be negative")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        running: list[SimulatorServer] = []
        try:
            for offset, (kind, dotted) in enumerate(SIMULATORS):
                simulator_class = load_simulator(dotted)
                if simulator_class is None:
                    continue
                simulator = simulator_class(**self._limits(kind, options["demo_limits"]))
                port = options["base_port"] + offset if options["base_port"] else 0
                base_url = simulator.start(host=options["host"], port=port)
                running.append(simulator)
                self._populate(simulator, skus=skus, options=options)
                self.stdout.write(f"SIMULATOR {kind} {base_url}")
                self.stdout.flush()
            stop.wait()
        finally:
            for simulator in running:
                simulator.stop()

    @staticmethod
    def _limits(kind: str, relaxed: bool) -> dict[str, Any]:
        if not (relaxed and kind == "amazon"):
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
