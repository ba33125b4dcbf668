# The pickup time now lives in the warehouse's default CarrierPickup (copied by 0005).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0005_carrier_pickups"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="warehouse",
            name="carrier_pickup",
        ),
    ]
