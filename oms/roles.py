"""Staff roles as Django groups: what warehouse, customer service and manager staff may do.

Migrations call ``roles_sync`` whenever a new app or permission needs a role; it is
idempotent and only ever adds permissions.
"""

WAREHOUSE = "Warehouse"
CUSTOMER_SERVICE = "Customer service"
MANAGER = "Manager"

# Codenames per app label; "view" means every view_ permission of the app.
ROLE_PERMISSIONS: dict[str, dict[str, list[str]]] = {
    WAREHOUSE: {
        "inventory": [
            "view",
            "receive_stock",
            "adjust_stock",
            "count_stock",
            "transfer_stock",
        ],
        "channels_app": ["view"],
        "oms": ["view", "allocate_order", "ship_order", "hold_order", "export_orders"],
        "returns": ["view", "receive_return", "inspect_return"],
    },
    CUSTOMER_SERVICE: {
        "inventory": ["view"],
        "oms": ["view", "cancel_order", "hold_order", "export_orders", "change_order"],
        "returns": ["view", "add_returnrequest", "decide_return", "refund_return"],
        "channels_app": ["view"],
    },
    MANAGER: {
        "inventory": [
            "view",
            "receive_stock",
            "adjust_stock",
            "count_stock",
            "transfer_stock",
            "add_sku",
            "change_sku",
            "add_warehouse",
            "change_warehouse",
            "add_bundlecomponent",
            "change_bundlecomponent",
            "delete_bundlecomponent",
            "add_carrierpickup",
            "change_carrierpickup",
            "delete_carrierpickup",
            "repair_ledger",
        ],
        "oms": [
            "view",
            "add_order",
            "change_order",
            "allocate_order",
            "ship_order",
            "cancel_order",
            "hold_order",
            "export_orders",
            "add_saleschannel",
            "change_saleschannel",
            "add_routingrule",
            "change_routingrule",
            "delete_routingrule",
        ],
        "returns": [
            "view",
            "add_returnrequest",
            "decide_return",
            "receive_return",
            "inspect_return",
            "refund_return",
            "add_autodecisionrule",
            "change_autodecisionrule",
            "delete_autodecisionrule",
        ],
        "channels_app": [
            "view",
            "add_channel",
            "change_channel",
            "add_listing",
            "change_listing",
            "change_pendingpush",
            "change_orderimporterror",
        ],
    },
}


def roles_sync(apps, schema_editor=None) -> None:
    """Create the role groups and grant them their permissions (adding, never removing)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, per_app in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for app_label, codenames in per_app.items():
            in_app = Permission.objects.filter(content_type__app_label=app_label)
            wanted = in_app.filter(codename__in=[c for c in codenames if c != "view"])
            if "view" in codenames:
                wanted = wanted | in_app.filter(codename__startswith="view_")
            group.permissions.add(*wanted)
