"""Buyer-name prefix search (``istartswith``) on PostgreSQL: an index on UPPER(buyer_name)
with ``text_pattern_ops``, which Django's Index cannot express portably."""

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS order_buyer_name_prefix_idx "
    "ON oms_order (UPPER(buyer_name::text) text_pattern_ops)"
)
DROP = "DROP INDEX IF EXISTS order_buyer_name_prefix_idx"


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("oms", "0006_account_health")]

    operations = [
        migrations.RemoveIndex(model_name="order", name="order_buyer_name_ci_idx"),
        migrations.RunPython(_on_postgres(CREATE), _on_postgres(DROP)),
    ]
