"""Building a channel's connector and recording the channel's sync health."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from channels_app.connectors.base import ChannelConfig, ChannelConnector, ConnectorError
from channels_app.connectors.registry import get_connector
from channels_app.models import Channel, SyncLog


def channel_config(channel: Channel) -> ChannelConfig:
    return ChannelConfig(
        kind=channel.kind,
        base_url=channel.api_base_url,
        credentials=channel.get_credentials(),
        marketplace=channel.marketplace,
        extra=dict(channel.settings_json or {}),
    )


def channel_connector(channel: Channel) -> ChannelConnector:
    """The connector for ``channel``'s kind, configured with its URL and credentials."""
    return get_connector(channel_config(channel))


def channel_health_record(
    *,
    channel: Channel,
    kind: str,
    started_at: datetime,
    ok: bool,
    items: int = 0,
    errors: int = 0,
    message: str = "",
) -> SyncLog:
    """Write one sync-log entry and update the channel's last success / last error."""
    now = timezone.now()
    if ok:
        Channel.objects.filter(pk=channel.pk).update(last_success_at=now)
    else:
        Channel.objects.filter(pk=channel.pk).update(last_error_at=now, last_error=message[:2000])
    return SyncLog.objects.create(
        channel=channel,
        kind=kind,
        ok=ok,
        items=items,
        errors=errors,
        message=message[:5000],
        started_at=started_at,
    )


def channel_test_connection(*, channel: Channel) -> str:
    """Call the channel with its credentials; returns the channel's answer or raises
    ``ConnectorError`` with its message. Recorded in the sync log either way."""
    started = timezone.now()
    connector = channel_connector(channel)
    try:
        answer = connector.test_connection()
    except ConnectorError as err:
        channel_health_record(
            channel=channel,
            kind=SyncLog.Kind.CONNECTION,
            started_at=started,
            ok=False,
            message=str(err),
        )
        raise
    finally:
        connector.close()
    channel_health_record(
        channel=channel, kind=SyncLog.Kind.CONNECTION, started_at=started, ok=True, message=answer
    )
    return answer
