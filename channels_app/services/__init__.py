"""Every write of the channel integration: imports, confirmations, webhooks, sync."""
