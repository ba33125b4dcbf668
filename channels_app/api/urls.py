from django.urls import path

from . import views

urlpatterns = [
    path(
        "<slug:code>/shipments/", views.ShipmentCallbackView.as_view(), name="warehouse-shipments"
    ),
    path(
        "<slug:code>/stock-snapshots/",
        views.StockSnapshotView.as_view(),
        name="warehouse-snapshots",
    ),
    path(
        "<slug:code>/return-receipts/", views.ReturnReceiptView.as_view(), name="warehouse-returns"
    ),
]
