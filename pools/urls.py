from django.urls import path

from pools import views

app_name = "pools"

urlpatterns = [
    path("console/pools/", views.pool_list, name="list"),
    path("console/pools/new/", views.pool_new, name="new"),
    path("console/pools/<uuid:pool_id>/", views.pool_detail, name="detail"),
    path("console/pools/<uuid:pool_id>/sync/", views.pool_sync_now, name="sync"),
    path("console/pools/<uuid:pool_id>/drain/", views.pool_drain, name="drain"),
    path("console/allocations/", views.allocation_list, name="allocations"),
    path("console/allocations/<uuid:allocation_id>/preempt/", views.allocation_preempt_view, name="allocation_preempt"),
    path("allocations/<uuid:allocation_id>/", views.allocation_detail, name="allocation"),
    path("allocations/<uuid:allocation_id>/release/", views.allocation_release_view, name="allocation_release"),
    path("t/<slug:slug>/allocations/", views.tenant_allocations, name="tenant_allocations"),
    path("console/idle/", views.idle_policies, name="idle"),
    path("console/queue/", views.queue, name="queue"),
    path("console/heatmap/", views.gpu_heatmap, name="heatmap"),
    path("console/pools/<uuid:pool_id>/heatmap/", views.gpu_heatmap, name="pool_heatmap"),
    path("t/<slug:slug>/queue/", views.queue, name="tenant_queue"),
    path("t/<slug:slug>/idle/", views.tenant_idle, name="tenant_idle"),
]
