from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from billing.api.views import BudgetViewSet, PriceViewSet, StatementViewSet, UsageViewSet
from ocenter.api import api_not_found
from ocenter.api_views import AuditEntryViewSet
from pools.api.views import AcceleratorViewSet, AllocationViewSet, PoolViewSet
from tenants.api.views import ApiTokenViewSet, MembershipViewSet, ProjectViewSet, QuotaViewSet, TenantViewSet

router = DefaultRouter(trailing_slash=False)
router.register("tenants", TenantViewSet, basename="tenant")
router.register("projects", ProjectViewSet, basename="project")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("quotas", QuotaViewSet, basename="quota")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("pools", PoolViewSet, basename="pool")
router.register("accelerators", AcceleratorViewSet, basename="accelerator")
router.register("allocations", AllocationViewSet, basename="allocation")
router.register("prices", PriceViewSet, basename="price")
router.register("usage", UsageViewSet, basename="usage")
router.register("budgets", BudgetViewSet, basename="budget")
router.register("statements", StatementViewSet, basename="statement")
router.register("audit", AuditEntryViewSet, basename="audit")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    path("", include(router.urls)),
    re_path(r"^(?P<path>.*)$", api_not_found),
]
