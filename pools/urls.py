from django.urls import path

from pools import views

app_name = "pools"

urlpatterns = [
    path("", views.pool_list, name="list"),
    path("new/", views.pool_new, name="new"),
    path("<uuid:pool_id>/", views.pool_detail, name="detail"),
    path("<uuid:pool_id>/sync/", views.pool_sync_now, name="sync"),
]
