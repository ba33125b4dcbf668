from django.db import migrations

from oms.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [("oms", "0002_orders")]

    operations = [migrations.RunPython(roles_sync, migrations.RunPython.noop)]
