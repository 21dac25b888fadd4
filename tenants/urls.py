from django.urls import path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("", views.portal, name="portal"),
    path("invitations/<str:secret>/", views.invitation, name="invitation"),
    path("invitations/<uuid:invitation_id>/accept/", views.invitation_accept, name="invitation_accept"),
    path("<slug:slug>/", views.tenant_detail, name="detail"),
    path("<slug:slug>/status/", views.tenant_status, name="status"),
    path("<slug:slug>/projects/new/", views.project_new, name="project_new"),
    path("<slug:slug>/members/new/", views.member_new, name="member_new"),
    path("<slug:slug>/members/<uuid:membership_id>/role/", views.member_role, name="member_role"),
    path("<slug:slug>/members/<uuid:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("<slug:slug>/quotas/", views.quota_set, name="quota_set"),
    path("<slug:slug>/tokens/new/", views.token_new, name="token_new"),
    path("<slug:slug>/tokens/<uuid:token_id>/revoke/", views.token_revoke, name="token_revoke"),
]
