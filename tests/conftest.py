import pytest
from django.db import connection


def pytest_collection_modifyitems(config, items):
    """Skip PostgreSQL-only tests with a clear reason when the database is not PostgreSQL."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    reason = pytest.mark.skip(
        reason="needs PostgreSQL row locks: set DATABASE_URL=postgres://... to run"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(reason)


@pytest.fixture
def on_postgres():
    return connection.vendor == "postgresql"
