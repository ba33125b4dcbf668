"""Every stock movement inserted writes its stock-change outbox row, in the database.

No code path (a service, a data fix in SQL, a future importer) can then change stock without
the channels hearing of it, and a ledger write costs no extra round trip for its outbox row.
"""

from django.db import migrations

LEDGER, OUTBOX = "inventory_stockmovement", "inventory_stockchange"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION inventory_ledger_to_outbox() RETURNS trigger AS $$
BEGIN
    INSERT INTO {OUTBOX} (sku_id, warehouse_id, created_at)
        SELECT DISTINCT sku_id, warehouse_id, now() FROM moved;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER inventory_ledger_to_outbox AFTER INSERT ON {LEDGER}
    REFERENCING NEW TABLE AS moved
    FOR EACH STATEMENT EXECUTE FUNCTION inventory_ledger_to_outbox();
"""
POSTGRES_DOWN = f"""
DROP TRIGGER IF EXISTS inventory_ledger_to_outbox ON {LEDGER};
DROP FUNCTION IF EXISTS inventory_ledger_to_outbox();
"""
# SQLite has no statement-level triggers: one outbox row per movement (the consumer reads
# each changed SKU once however many rows name it).
SQLITE_UP = f"""CREATE TRIGGER inventory_ledger_to_outbox AFTER INSERT ON {LEDGER}
BEGIN
    INSERT INTO {OUTBOX} (sku_id, warehouse_id, created_at)
        VALUES (NEW.sku_id, NEW.warehouse_id, strftime('%Y-%m-%d %H:%M:%f', 'now'));
END;"""
SQLITE_DOWN = "DROP TRIGGER IF EXISTS inventory_ledger_to_outbox;"


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        sql = statements_by_vendor.get(schema_editor.connection.vendor)
        if sql:
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("inventory", "0003_warehouse_schedule")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        )
    ]
