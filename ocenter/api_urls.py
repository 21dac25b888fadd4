from csp.decorators import csp_update
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from billing.api.views import BudgetViewSet, PriceViewSet, StatementViewSet, UsageViewSet
from ocenter.api import api_not_found
from ocenter.api_views import AuditEntryViewSet, WebhookViewSet
from pools.api.views import AcceleratorViewSet, AllocationViewSet, PoolViewSet
from tenants.api.views import ApiTokenViewSet, InvitationViewSet, MembershipViewSet, ProjectViewSet, QuotaViewSet, TenantViewSet

router = DefaultRouter(trailing_slash=False)
router.register("tenants", TenantViewSet, basename="tenant")
router.register("projects", ProjectViewSet, basename="project")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("invitations", InvitationViewSet, basename="invitation")
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
router.register("webhooks", WebhookViewSet, basename="webhook")

# The docs' pages relax the site's policy for themselves only: Swagger UI (its settings a script of its own, the split
# view) writes style elements as it draws; ReDoc's page also has its script inline.
docs = csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="api:schema"))
redoc = csp_update({"script-src": ["'unsafe-inline'"], "style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]})(
    SpectacularRedocView.as_view(url_name="api:schema")
)

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs, name="docs"),
    path("redoc/", redoc, name="redoc"),
    path("", include(router.urls)),
    re_path(r"^(?P<path>.*)$", api_not_found),
]
