from django.db import migrations

from oms.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("oms", "0007_buyer_name_prefix_index"),
        ("inventory", "0005_carrier_pickups"),
    ]

    operations = [migrations.RunPython(roles_sync, migrations.RunPython.noop)]
