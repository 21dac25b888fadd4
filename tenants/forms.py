"""Forms for the console and portal pages; the API's serializers check the same things."""

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.utils.translation import gettext_lazy as _

from tenants.models import Project, Role, Tenant
from tenants.quotas import DIMENSIONS, MAX_AMOUNT

AMOUNT_LABELS = {
    ("guarantee", "compute_units"): _("Guarantee (compute units)"),
    ("limit", "compute_units"): _("Limit (compute units)"),
    ("guarantee", "memory_mib"): _("Guarantee (memory MiB)"),
    ("limit", "memory_mib"): _("Limit (memory MiB)"),
    ("guarantee", "slices"): _("Guarantee (slices)"),
    ("limit", "slices"): _("Limit (slices)"),
}


class TenantForm(forms.Form):
    slug = forms.SlugField(max_length=63, label=_("Slug"), help_text=_("Short name used in URLs and the API: acme."))
    name = forms.CharField(max_length=200, label=_("Name"))

    def clean_slug(self):
        slug = self.cleaned_data["slug"].lower()
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError(_("A tenant '%(slug)s' exists already; choose another slug.") % {"slug": slug})
        return slug


class ProjectForm(forms.Form):
    slug = forms.SlugField(max_length=63, label=_("Slug"))
    name = forms.CharField(max_length=200, label=_("Name"))
    description = forms.CharField(required=False, label=_("Description"), widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_slug(self):
        slug = self.cleaned_data["slug"].lower()
        if Project.objects.filter(tenant=self.tenant, slug=slug).exists():
            raise forms.ValidationError(_("%(tenant)s already has a project '%(slug)s'.") % {"tenant": self.tenant.slug, "slug": slug})
        return slug


class MemberForm(forms.Form):
    """Whom to invite: a username (theirs, or the one they will take), and the role they will have."""

    username = forms.CharField(max_length=150, label=_("Username"), help_text=_("They accept by the link you get, or in their portal."))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, label=_("Role"))


class SignUpForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput, label=_("Choose a password"), min_length=12)

    def clean_password(self):
        password = self.cleaned_data["password"]
        if password:
            validate_password(password)
        return password


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, label=_("Role"))


class QuotaForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False, empty_label=_("the whole tenant"), label=_("Project"))
    pool_name = forms.SlugField(required=False, max_length=63, label=_("Pool"), help_text=_("Empty: every pool."))
    accelerator_model = forms.CharField(required=False, max_length=64, label=_("Model"), help_text=_("Empty: every model."))

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = tenant.projects.all()
        for d in DIMENSIONS:
            for kind in ("guarantee", "limit"):
                self.fields[f"{kind}_{d}"] = forms.IntegerField(
                    min_value=0, max_value=MAX_AMOUNT[d], initial=0, label=AMOUNT_LABELS[kind, d]
                )

    def clean(self):
        data = super().clean()
        for d in DIMENSIONS:
            g, lim = data.get(f"guarantee_{d}"), data.get(f"limit_{d}")
            if g is not None and lim is not None and lim < g:
                self.add_error(
                    f"limit_{d}",
                    _("The limit (%(limit)s) must be at least the guarantee (%(guarantee)s).") % {"limit": lim, "guarantee": g},
                )
        return data


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label=_("Name"), help_text=_("What it is for: ci, notebook, scheduler."))
    role = forms.ChoiceField(
        choices=[("", _("my role")), *Role.choices],
        required=False,
        label=_("Role"),
        help_text=_("Cap the token below your role, e.g. viewer for a dashboard."),
    )
    expires_at = forms.DateTimeField(required=False, label=_("Expires"), help_text=_("Optional, e.g. 2027-01-31 00:00."))
