from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("console/billing/", views.console_billing, name="console"),
    path("console/billing/<slug:slug>/close/", views.close_month, name="close_month"),
    path("t/<slug:slug>/billing/", views.tenant_billing, name="tenant"),
    path("statements/<uuid:statement_id>.csv", views.statement_download, name="statement_csv"),
]
