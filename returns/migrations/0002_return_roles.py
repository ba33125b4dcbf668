from django.db import migrations

from oms.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("returns", "0001_returns"),
        ("channels_app", "0001_channels"),
        ("oms", "0003_order_roles"),
    ]

    operations = [migrations.RunPython(roles_sync, migrations.RunPython.noop)]
