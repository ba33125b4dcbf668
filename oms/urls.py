from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/inventory/", include("inventory.api.urls")),
    path("webhooks/", include("channels_app.urls")),
    path("api/warehouses/", include("channels_app.api.urls")),
    path("api/orders/", include("oms.api.urls")),
    path("api/returns/", include("returns.api.urls")),
    path("", include("oms.site_urls")),
]
