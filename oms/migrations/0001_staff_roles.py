from django.db import migrations

from oms.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("inventory", "0002_ledger_append_only"),
    ]

    operations = [migrations.RunPython(roles_sync, migrations.RunPython.noop)]
