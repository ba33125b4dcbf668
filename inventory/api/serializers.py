"""Inventory API serializers: ``<Model>OutputSerializer`` for reads, plain input serializers
for the stock commands (validated types only; the services own every domain rule)."""

from __future__ import annotations

from django.db.models import Manager
from rest_framework import serializers

from inventory import selectors
from inventory.models import SKU, BundleComponent, StockLevel, StockMovement, Warehouse


class ErrorOutputSerializer(serializers.Serializer):
    """The body of every 400/409 answer (see ``oms.api.exceptions``)."""

    code = serializers.CharField(help_text="Stable machine-readable error code.")
    detail = serializers.CharField(help_text="What went wrong, for people.")


class WarehouseOutputSerializer(serializers.ModelSerializer):
    time_zone = serializers.CharField(read_only=True)

    class Meta:
        model = Warehouse
        fields = ["code", "name", "kind", "time_zone", "country", "is_active"]


class BundleComponentOutputSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="component.code", read_only=True)

    class Meta:
        model = BundleComponent
        fields = ["sku", "quantity"]


class _SKUListSerializer(serializers.ListSerializer):
    """Reads the available quantity of a whole page of SKUs in one batch."""

    def to_representation(self, data):
        items = list(data.all() if isinstance(data, Manager) else data)
        self.context["available"] = selectors.stock_available_many(skus=items)
        return super().to_representation(items)


class SKUOutputSerializer(serializers.ModelSerializer):
    components = BundleComponentOutputSerializer(source="bundle_lines", many=True, read_only=True)
    available = serializers.SerializerMethodField(
        help_text="Units sellable now over all sellable warehouses (bundles: kits buildable)."
    )

    class Meta:
        model = SKU
        fields = [
            "code",
            "title",
            "barcode",
            "kind",
            "category",
            "weight_grams",
            "is_active",
            "components",
            "available",
        ]
        list_serializer_class = _SKUListSerializer

    def get_available(self, obj: SKU) -> int:
        batch = self.context.get("available")
        if batch is not None and obj.pk in batch:
            return batch[obj.pk]
        return selectors.stock_available_many(skus=[obj])[obj.pk]


class StockLevelOutputSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code", read_only=True)
    warehouse = serializers.CharField(source="warehouse.code", read_only=True)
    available = serializers.SerializerMethodField(
        help_text="On hand minus reserved; always 0 in a quarantine warehouse."
    )

    class Meta:
        model = StockLevel
        fields = [
            "id",
            "sku",
            "warehouse",
            "on_hand",
            "reserved",
            "available",
            "bin_location",
            "updated_at",
        ]

    def get_available(self, obj: StockLevel) -> int:
        annotated = getattr(obj, "available_qty", None)
        if annotated is not None:
            return annotated
        # Same rule as selectors.stock_available: quarantine stock is never sellable.
        return obj.available if obj.warehouse.is_sellable else 0


class StockMovementOutputSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code", read_only=True)
    warehouse = serializers.CharField(source="warehouse.code", read_only=True)
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = StockMovement
        fields = [
            "id",
            "kind",
            "sku",
            "warehouse",
            "on_hand_delta",
            "reserved_delta",
            "reason",
            "reference",
            "actor",
            "created_at",
        ]


class _StockCommandInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64, help_text="SKU code.")
    warehouse = serializers.CharField(max_length=32, help_text="Warehouse code.")
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class StockReceiveInputSerializer(_StockCommandInputSerializer):
    quantity = serializers.IntegerField(help_text="Units received (above zero).")
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class StockAdjustInputSerializer(_StockCommandInputSerializer):
    delta = serializers.IntegerField(help_text="Units to add (positive) or remove (negative).")
    reason = serializers.CharField(
        max_length=200, allow_blank=True, help_text="Required: why stock changed."
    )


class StockCountInputSerializer(_StockCommandInputSerializer):
    counted_quantity = serializers.IntegerField(help_text="Units counted (zero or more).")
