"""
Tenant pages. Staff reach every tenant from the console; a member reaches its
own tenants from the portal. The same page serves both, with the forms the
viewer's role allows; every action goes through the services the API uses.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from ocenter.access import staff_required
from ocenter.errors import DomainError
from tenants import services
from tenants.access import Access, get_tenant_for, require_role, require_staff
from tenants.forms import MemberForm, ProjectForm, QuotaForm, RoleForm, SignUpForm, TenantForm, TokenForm
from tenants.models import ApiToken, Invitation, Membership, Quota, Role, Tenant
from tenants.selectors import invitation_by_secret, month_spend, quotas_with_usage


def _back(tenant):
    return redirect("tenants:detail", slug=tenant.slug)


def _form_errors(form) -> str:
    return " ".join(f"{'' if f == '__all__' else f + ': '}{' '.join(e)}" for f, e in form.errors.items())


@staff_required
def tenant_list(request):
    form = TenantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tenant = services.tenant_create(actor=request.user, **form.cleaned_data)
        messages.success(request, _("Tenant %(tenant)s created. Add its first owner below.") % {"tenant": tenant.slug})
        return _back(tenant)
    tenants = list(Tenant.objects.order_by("slug"))
    quotas = {u.quota.tenant_id: u for u in quotas_with_usage(Quota.objects.filter(project=None, pool_name="", accelerator_model=""))}
    for tenant in tenants:
        tenant.quota_usage = quotas.get(tenant.id)
    return render(request, "tenants/tenant_list.html", {"tenants": tenants, "form": form, "spend": month_spend(t.id for t in tenants)})


@login_required
def portal(request):
    """A member's tenants; straight to the tenant when there is one."""
    access = Access.of(request)
    tenants = list(access.tenants())
    invitations = [i for i in Invitation.objects.select_related("tenant").filter(username__iexact=request.user.get_username(),
                                                                                  accepted_at=None) if i.open]  # fmt: skip
    if len(tenants) == 1 and not access.is_staff and not invitations:
        return _back(tenants[0])
    return render(request, "tenants/portal.html", {"tenants": tenants, "invitations": invitations})


@login_required
def tenant_detail(request, slug):
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    role = access.role(tenant.id)
    is_admin = access.has_role(tenant.id, Role.ADMIN)
    tokens = ApiToken.objects.filter(tenant=tenant).select_related("user").order_by("-created_at")
    if not is_admin:
        tokens = tokens.filter(user=request.user)
    context = {
        "tenant": tenant,
        "role": role,
        "role_label": _("platform staff") if role == "staff" else Role(role).label,
        "is_admin": is_admin,
        "is_owner": access.has_role(tenant.id, Role.OWNER),
        "is_staff": access.is_staff,
        "projects": tenant.projects.order_by("slug"),
        "memberships": tenant.memberships.select_related("user").order_by("user__username"),
        "quotas": quotas_with_usage(tenant.quotas.select_related("project").order_by("project__slug", "pool_name", "accelerator_model")),
        "tokens": tokens,
        "project_form": ProjectForm(tenant=tenant),
        "member_form": MemberForm(),
        "quota_form": QuotaForm(tenant=tenant),
        "token_form": TokenForm(),
        "roles": Role.choices,
    }
    return render(request, "tenants/tenant_detail.html", context)


def _act(request, slug, minimum, doing):
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    require_role(access, tenant, minimum, doing)
    return access, tenant


@login_required
@require_POST
def tenant_status(request, slug):
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    require_staff(access, "Suspending or reactivating a tenant")
    status = Tenant.Status.SUSPENDED if tenant.is_active else Tenant.Status.ACTIVE
    services.tenant_update(actor=request.user, tenant=tenant, status=status)
    messages.success(request, _("%(tenant)s is now %(status)s.") % {"tenant": tenant.slug, "status": Tenant.Status(status).label})
    return _back(tenant)


@login_required
@require_POST
def project_new(request, slug):
    access, tenant = _act(request, slug, Role.ADMIN, "Creating a project")
    form = ProjectForm(request.POST, tenant=tenant)
    if form.is_valid():
        project = services.project_create(actor=request.user, tenant=tenant, **form.cleaned_data)
        messages.success(request, _("Project %(project)s created.") % {"project": project.slug})
    else:
        messages.error(request, _("Project not created.") + " " + _form_errors(form))
    return _back(tenant)


@login_required
@require_POST
@never_cache
def member_new(request, slug):
    """Invite someone by username: the same answer whoever the name belongs to, and the link to hand them (shown once)."""
    access, tenant = _act(request, slug, Role.ADMIN, "Inviting a member")
    form = MemberForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Nobody invited.") + " " + _form_errors(form))
        return _back(tenant)
    if form.cleaned_data["role"] == Role.OWNER:
        require_role(access, tenant, Role.OWNER, "Inviting an owner")
    try:
        invitation, secret = services.invitation_create(actor=request.user, tenant=tenant, **form.cleaned_data)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return _back(tenant)
    link = request.build_absolute_uri(reverse("tenants:invitation", args=[secret]))
    return render(request, "tenants/invitation_sent.html", {"tenant": tenant, "invitation": invitation, "link": link})


@never_cache
def invitation(request, secret):
    """The invitation's link: its person accepts (logged in), or, where invitations make accounts, takes the name."""
    invitation = invitation_by_secret(secret)
    if invitation is None:
        return render(request, "tenants/invitation.html", {"gone": True}, status=404)
    mine = request.user.is_authenticated and request.user.get_username().lower() == invitation.username.lower()
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        try:
            if mine:
                services.invitation_accept(user=request.user, invitation=invitation)
            elif not request.user.is_authenticated and form.is_valid():
                user, _membership = services.invitation_sign_up(invitation=invitation, password=form.cleaned_data["password"])
                auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            else:
                return render(request, "tenants/invitation.html", {"invitation": invitation, "form": form, "mine": mine}, status=400)
        except DomainError as exc:
            messages.error(request, exc.detail)
            return redirect("tenants:invitation", secret=secret)
        messages.success(request, _("You joined %(tenant)s.") % {"tenant": invitation.tenant.slug})
        return _back(invitation.tenant)
    return render(request, "tenants/invitation.html", {"invitation": invitation, "form": form, "mine": mine,
                                                       "sign_up": settings.OCENTER_USER_CREATION == "invitations"})  # fmt: skip


@login_required
@require_POST
def invitation_accept(request, invitation_id):
    """Accept, from the portal's list, an invitation addressed to you."""
    invitation = get_object_or_404(Invitation, id=invitation_id, username__iexact=request.user.get_username())
    try:
        services.invitation_accept(user=request.user, invitation=invitation)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("tenants:portal")
    messages.success(request, _("You joined %(tenant)s.") % {"tenant": invitation.tenant.slug})
    return _back(invitation.tenant)


@login_required
@require_POST
def member_role(request, slug, membership_id):
    access, tenant = _act(request, slug, Role.ADMIN, "Changing a role")
    membership = get_object_or_404(Membership, id=membership_id, tenant=tenant)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back(tenant)
    if Role.OWNER in (membership.role, form.cleaned_data["role"]):
        require_role(access, tenant, Role.OWNER, "Granting or changing an owner")
    try:
        services.membership_set_role(actor=request.user, membership=membership, role=form.cleaned_data["role"])
        messages.success(
            request, _("%(user)s is now %(role)s.") % {"user": membership.user.username, "role": Role(form.cleaned_data["role"]).label}
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    return _back(tenant)


@login_required
@require_POST
def member_remove(request, slug, membership_id):
    access, tenant = _act(request, slug, Role.ADMIN, "Removing a member")
    membership = get_object_or_404(Membership, id=membership_id, tenant=tenant)
    if membership.role == Role.OWNER:
        require_role(access, tenant, Role.OWNER, "Removing an owner")
    try:
        services.membership_remove(actor=request.user, membership=membership)
        messages.success(
            request,
            _("%(user)s removed; their tokens for %(tenant)s are revoked.") % {"user": membership.user.username, "tenant": tenant.slug},
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    return _back(tenant)


@login_required
@require_POST
def quota_set(request, slug):
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    form = QuotaForm(request.POST, tenant=tenant)
    if not form.is_valid():
        messages.error(request, _("Quota not set.") + " " + _form_errors(form))
        return _back(tenant)
    data = form.cleaned_data
    if data["project"] is None and not access.is_staff:
        messages.error(request, _("Only platform staff set the whole tenant's quota; choose a project to divide it."))
        return _back(tenant)
    require_role(access, tenant, Role.ADMIN, "Dividing the quota among projects")
    try:
        quota = services.quota_set(actor=request.user, tenant=tenant, **data)
        messages.success(request, _("Quota for %(scope)s saved.") % {"scope": quota.scope_label})
    except DomainError as exc:
        messages.error(request, _("Quota not set:") + " " + exc.detail)
    return _back(tenant)


@login_required
@require_POST
@never_cache
def token_new(request, slug):
    access, tenant = _act(request, slug, Role.VIEWER, "Creating a token")
    form = TokenForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Token not created.") + " " + _form_errors(form))
        return _back(tenant)
    role = form.cleaned_data["role"]
    current = access.role(tenant.id)
    if role and current != "staff" and Role.rank(role) > Role.rank(current):
        messages.error(request, _("A token cannot act above your own role (%(role)s).") % {"role": current})
        return _back(tenant)
    token, secret = services.token_create(actor=request.user, user=request.user, tenant=tenant, **form.cleaned_data)
    api_root = request.build_absolute_uri("/api/v1/")
    return render(request, "tenants/token_new.html", {"tenant": tenant, "token": token, "secret": secret, "api_root": api_root})


@login_required
@require_POST
def token_revoke(request, slug, token_id):
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    token = get_object_or_404(ApiToken, id=token_id, tenant=tenant)
    if token.user_id != request.user.id:
        require_role(access, tenant, Role.ADMIN, "Revoking another member's token")
    services.token_revoke(actor=request.user, token=token)
    messages.success(request, _("Token %(prefix)s… revoked.") % {"prefix": token.prefix})
    return _back(tenant)
