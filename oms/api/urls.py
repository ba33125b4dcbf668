"""Orders API routes, mounted at ``/api/orders/``."""

from rest_framework.routers import SimpleRouter

from . import views

# SimpleRouter: with an empty prefix, DefaultRouter's API root would shadow the list route.
router = SimpleRouter()
router.register("", views.OrderViewSet, basename="order")

urlpatterns = router.urls
