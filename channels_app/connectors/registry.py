"""Which connector class serves which channel kind."""

from __future__ import annotations

import importlib

from .base import ChannelConfig, ChannelConnector, ConnectorPermanentError

# Dotted paths, imported on first use: the Amazon connector pulls in python-amazon-sp-api,
# which nothing else should pay for.
CONNECTORS: dict[str, str] = {
    "amazon": "channels_app.connectors.amazon.AmazonConnector",
    "shopify": "channels_app.connectors.shopify.ShopifyConnector",
    "ebay": "channels_app.connectors.ebay.EbayConnector",
    "walmart": "channels_app.connectors.walmart.WalmartConnector",
}


def connector_class(kind: str) -> type[ChannelConnector]:
    """The connector class for ``kind``; raises ``ConnectorPermanentError`` if unknown."""
    try:
        dotted = CONNECTORS[kind]
    except KeyError:
        raise ConnectorPermanentError(f"no connector for channel kind {kind!r}") from None
    module_name, class_name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)


def get_connector(config: ChannelConfig) -> ChannelConnector:
    """A connector for ``config.kind`` bound to that channel account."""
    return connector_class(config.kind)(config)
