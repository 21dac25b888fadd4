from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from ocenter import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("console/pools/", include("pools.urls")),
    path("api/v1/", include(("ocenter.api_urls", "api"))),
    path("admin/", admin.site.urls),
]
