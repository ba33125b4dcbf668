from django.urls import path

from . import views

urlpatterns = [
    path("shopify/<slug:channel_code>/", views.shopify_webhook, name="shopify-webhook"),
]
