from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("console/billing/", views.console_billing, name="console"),
    path("console/billing/<slug:slug>/close/", views.close_month, name="close_month"),
    path("t/<slug:slug>/billing/", views.tenant_billing, name="tenant"),
    path("t/<slug:slug>/billing/usage.csv", views.tenant_usage_csv, name="tenant_usage_csv"),
    path("console/billing/usage.csv", views.usage_csv, name="usage_csv"),
    path("statements/<uuid:statement_id>.csv", views.statement_download, name="statement_csv"),
]
