"""Database triggers that make the stock movement ledger append-only."""

from django.db import migrations

TABLE = "inventory_stockmovement"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION inventory_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the stock movement ledger is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER inventory_ledger_no_update BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION inventory_ledger_append_only();
"""
POSTGRES_DOWN = f"""
DROP TRIGGER IF EXISTS inventory_ledger_no_update ON {TABLE};
DROP FUNCTION IF EXISTS inventory_ledger_append_only();
"""
# SQLite (development) refuses updates in the database; deletes are refused by the model
# layer there, because Django's test-database flush empties tables with DELETE.
SQLITE_UP = [
    f"""CREATE TRIGGER inventory_ledger_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, 'the stock movement ledger is append-only (UPDATE refused)'); END;""",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS inventory_ledger_no_update;"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor, [])
        if isinstance(statements, str):
            statements = [statements]
        for sql in statements:
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        )
    ]
