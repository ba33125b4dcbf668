from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from channels_app.demo import seed_channels
from inventory.demo import seed_inventory
from oms import roles

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"

STAFF = [
    ("warehouse", roles.WAREHOUSE),
    ("service", roles.CUSTOMER_SERVICE),
    ("manager", roles.MANAGER),
]


class Command(BaseCommand):
    help = (
        "Load demo data (idempotent): users, warehouses, SKUs, stock, and four channels "
        "connected to the local simulators."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        demo, created = User.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            demo.set_password(DEMO_PASSWORD)
            demo.save(update_fields=["password"])
        for username, role in STAFF:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": True}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            user.groups.add(Group.objects.get(name=role))
        seed_inventory()
        seed_channels()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready. Log in as {DEMO_USERNAME} / {DEMO_PASSWORD} "
                "(or warehouse, service, manager with the same password)."
            )
        )
