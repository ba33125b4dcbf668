"""The channel's own account-health report, for the daily comparison with our figures."""

from __future__ import annotations

from channels_app.models import Channel
from oms.models import SalesChannel

from .connection import channel_connector


def channel_account_health(channel: SalesChannel) -> list:
    """Amazon's seller performance report for an Amazon channel; nothing for the others."""
    connection = Channel.objects.filter(pk=channel.pk).first()
    if connection is None or connection.kind != Channel.Kind.AMAZON:
        return []
    connector = channel_connector(connection)
    try:
        return connector.fetch_account_health()
    finally:
        connector.close()
