from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from ocenter import views
from tenants import views as tenant_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path(
        "login/", auth_views.LoginView.as_view(redirect_authenticated_user=True, extra_context={"sso": settings.OCENTER_OIDC}), name="login"
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("pools.urls")),
    path("", include("billing.urls")),
    path("console/", views.overview, name="console-overview"),
    path("console/tenants/", tenant_views.tenant_list, name="console-tenants"),
    path("console/audit/", views.audit_log, name="console-audit"),
    path("console/trends/", views.trends, name="console-trends"),
    path("preferences/", views.preferences, name="preferences"),
    path("t/<slug:slug>/allocations/preview/", views.request_preview, name="request-preview"),
    path("t/", include("tenants.urls")),
    path("api/v1/", include(("ocenter.api_urls", "api"))),
    path("admin/", admin.site.urls),
]

if settings.OCENTER_OIDC:  # single sign-on: /oidc/authenticate/ and the provider's way back, /oidc/callback/
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))

handler403 = "ocenter.views.permission_denied"
