"""Building a channel's connector and recording the channel's sync health."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from channels_app.connectors.base import ChannelConfig, ChannelConnector
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
    return channel_call(
        channel=channel,
        kind=SyncLog.Kind.CONNECTION,
        label="connection test",
        call=lambda connector: connector.test_connection(),
    )


def channel_call(*, channel: Channel, kind: str, label: str, call: Callable):
    """Run ``call(connector)`` against the channel and record the outcome in its health and
    sync log under ``label``; an error is recorded, then re-raised for the caller's retry
    policy. Returns what ``call`` returned."""
    started = timezone.now()
    connector = channel_connector(channel)
    try:
        result = call(connector)
    except Exception as err:
        channel_health_record(
            channel=channel,
            kind=kind,
            started_at=started,
            ok=False,
            errors=1,
            message=f"{label}: {err}",
        )
        raise
    finally:
        connector.close()
    channel_health_record(
        channel=channel,
        kind=kind,
        started_at=started,
        ok=True,
        items=1,
        message=f"{label} -> {result}",
    )
    return result
