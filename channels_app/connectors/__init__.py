"""Channel connectors: one per channel kind, HTTP and mapping only (no ORM)."""
