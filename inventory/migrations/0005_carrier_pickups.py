# Each warehouse's single carrier pickup time becomes its default CarrierPickup row, so no
# stored pickup time is lost; reversing copies the default row's time back. The old column
# goes in the next migration: PostgreSQL will not alter a table with the new rows' deferred
# foreign-key checks still pending in the same transaction.

import datetime

import django.db.models.deletion
from django.db import migrations, models

import inventory.models


def pickups_from_warehouses(apps, schema_editor):
    warehouse = apps.get_model("inventory", "Warehouse")
    carrier_pickup = apps.get_model("inventory", "CarrierPickup")
    carrier_pickup.objects.bulk_create(
        carrier_pickup(warehouse_id=pk, cutoff=pickup, weekdays="01234", is_default=True)
        for pk, pickup in warehouse.objects.values_list("pk", "carrier_pickup")
    )


def warehouses_from_pickups(apps, schema_editor):
    warehouse = apps.get_model("inventory", "Warehouse")
    carrier_pickup = apps.get_model("inventory", "CarrierPickup")
    for pickup in carrier_pickup.objects.filter(is_default=True):
        warehouse.objects.filter(pk=pickup.warehouse_id).update(carrier_pickup=pickup.cutoff)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0004_ledger_writes_outbox"),
    ]

    operations = [
        migrations.CreateModel(
            name="CarrierPickup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("carrier", models.CharField(blank=True, help_text="E.g. UPS, USPS, FedEx.", max_length=60)),
                ("services", models.CharField(blank=True, help_text="Comma-separated service levels this pickup takes (e.g. 'NextDay, SecondDay'); an order whose service level is the carrier's name goes here too.", max_length=300, verbose_name="shipping services")),
                ("cutoff", models.TimeField(default=datetime.time(15, 0), help_text="Local time (warehouse time zone) the carrier collects; packing must finish the warehouse's packing buffer before it.", verbose_name="cut-off")),
                ("weekdays", models.CharField(default="01234", help_text="The days it comes, Monday 0 to Sunday 6 (public holidays are skipped).", max_length=7, validators=[inventory.models.validate_weekdays])),
                ("is_default", models.BooleanField(default=False, help_text="Takes every order no other pickup of the warehouse takes.", verbose_name="default pickup")),
                ("warehouse", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="pickups", to="inventory.warehouse")),
            ],
            options={
                "ordering": ["warehouse", "cutoff", "id"],
                "constraints": [models.UniqueConstraint(condition=models.Q(("is_default", True)), fields=("warehouse",), name="carrier_pickup_one_default")],
            },
        ),
        migrations.RunPython(pickups_from_warehouses, warehouses_from_pickups),
    ]
