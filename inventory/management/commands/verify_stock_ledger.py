from django.core.management.base import BaseCommand

from inventory import selectors, services
from inventory.models import StockLevel


class Command(BaseCommand):
    help = (
        "Recompute every stock counter from the movement ledger and the active reservations, "
        "report each mismatch and (unless --dry-run) repair it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")

    def handle(self, *args, dry_run: bool, **options):
        mismatches = selectors.stock_ledger_mismatches()
        names = {
            lvl.pk: f"{lvl.sku.code}@{lvl.warehouse.code}"
            for lvl in StockLevel.objects.filter(
                pk__in=[m.stock_level_id for m in mismatches]
            ).select_related("sku", "warehouse")
        }
        for m in mismatches:
            self.stdout.write(
                f"MISMATCH {names[m.stock_level_id]}: on_hand {m.on_hand} (ledger "
                f"{m.ledger_on_hand}), reserved {m.reserved} (reservations {m.active_reserved}, "
                f"ledger {m.ledger_reserved})"
            )
        if not dry_run and mismatches:
            repaired = services.stock_ledger_repair(repair=True)
            open_rows = [d for d in repaired if d.repaired_at is None]
            self.stdout.write(f"repaired {len(repaired) - len(open_rows)} counter(s)")
            if open_rows:
                self.stderr.write(f"{len(open_rows)} counter(s) need staff: ledger is inconsistent")
        self.stdout.write(self.style.SUCCESS(f"{len(mismatches)} mismatch(es) found"))
