"""Every write to the order domain. Import services from their modules, e.g.
``from oms.services.orders import order_cancel``."""
