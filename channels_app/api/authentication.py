"""Per-warehouse authentication for WMS/3PL callbacks: HMAC-SHA256 over the raw body with the
warehouse's shared secret, compared in constant time."""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from channels_app.connectors.threepl import verify_signature
from channels_app.models import WarehouseConnection
from inventory.models import Warehouse


@dataclass(frozen=True)
class WarehousePrincipal:
    """The caller is a warehouse system, not a person."""

    warehouse: Warehouse
    is_authenticated: bool = True
    is_active: bool = True

    def get_username(self) -> str:
        return f"warehouse:{self.warehouse.code}"


class WarehouseSignatureAuthentication(authentication.BaseAuthentication):
    header = "X-Signature"

    def authenticate(self, request):
        code = request.parser_context["kwargs"].get("code", "")
        connection = (
            WarehouseConnection.objects.select_related("warehouse")
            .filter(warehouse__code=code, mode=WarehouseConnection.Mode.API, is_active=True)
            .first()
        )
        signature = request.headers.get(self.header, "")
        if connection is None or not signature:
            raise exceptions.AuthenticationFailed("Unknown warehouse or missing signature.")
        if not verify_signature(connection.get_secret(), request.body, signature):
            raise exceptions.AuthenticationFailed("Signature does not match.")
        return WarehousePrincipal(connection.warehouse), connection

    def authenticate_header(self, request):
        return 'HMAC-SHA256 header="X-Signature"'


class IsWarehouse(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, WarehousePrincipal)


class WarehouseSignatureScheme(OpenApiAuthenticationExtension):
    """Describes the per-warehouse HMAC signature in the OpenAPI schema."""

    target_class = WarehouseSignatureAuthentication
    name = "warehouseSignature"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-Signature",
            "description": "sha256=<hex HMAC-SHA256 of the raw body with the warehouse's secret>",
        }
