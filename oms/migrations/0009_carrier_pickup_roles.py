from django.db import migrations

from oms.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("oms", "0008_order_defect_channel_status_payload"),
        ("inventory", "0005_carrier_pickups"),
    ]

    operations = [migrations.RunPython(roles_sync, migrations.RunPython.noop)]
