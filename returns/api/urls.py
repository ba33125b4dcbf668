"""Returns API routes, mounted at ``/api/returns/``."""

from rest_framework.routers import SimpleRouter

from . import views

# SimpleRouter: with an empty prefix, DefaultRouter's API root would shadow the list route.
router = SimpleRouter()
router.register("", views.ReturnRequestViewSet, basename="return")

urlpatterns = router.urls
