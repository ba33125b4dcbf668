"""Inventory API routes, mounted at ``/api/inventory/``."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("warehouses", views.WarehouseViewSet, basename="warehouse")
router.register("skus", views.SKUViewSet, basename="sku")
router.register("stock-levels", views.StockLevelViewSet, basename="stocklevel")
router.register("movements", views.StockMovementViewSet, basename="movement")

urlpatterns = [
    path("stock/receive/", views.StockReceiveView.as_view(), name="stock-receive"),
    path("stock/adjust/", views.StockAdjustView.as_view(), name="stock-adjust"),
    path("stock/count/", views.StockCountView.as_view(), name="stock-count"),
    *router.urls,
]
