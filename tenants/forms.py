"""Forms for the console and portal pages; the API's serializers check the same things."""

from django import forms
from django.contrib.auth.password_validation import validate_password

from tenants.models import Project, Role, Tenant
from tenants.quotas import DIMENSIONS


class TenantForm(forms.Form):
    slug = forms.SlugField(max_length=63, help_text="Short name used in URLs and the API: acme.")
    name = forms.CharField(max_length=200)

    def clean_slug(self):
        slug = self.cleaned_data["slug"].lower()
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"A tenant '{slug}' exists already; choose another slug.")
        return slug


class ProjectForm(forms.Form):
    slug = forms.SlugField(max_length=63)
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_slug(self):
        slug = self.cleaned_data["slug"].lower()
        if Project.objects.filter(tenant=self.tenant, slug=slug).exists():
            raise forms.ValidationError(f"{self.tenant.slug} already has a project '{slug}'.")
        return slug


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)
    password = forms.CharField(required=False, widget=forms.PasswordInput,
                               help_text="For a new user. Leave empty to get a generated one, shown once.")

    def clean_password(self):
        password = self.cleaned_data["password"]
        if password:
            validate_password(password)
        return password


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class QuotaForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False, empty_label="the whole tenant")
    pool_name = forms.SlugField(required=False, max_length=63, help_text="Empty: every pool.")
    accelerator_model = forms.CharField(required=False, max_length=64, help_text="Empty: every model.")

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = tenant.projects.all()
        for d in DIMENSIONS:
            for kind in ("guarantee", "limit"):
                self.fields[f"{kind}_{d}"] = forms.IntegerField(min_value=0, max_value=2**53, initial=0,
                                                                 label=f"{kind.title()} ({d.replace('_', ' ')})")

    def clean(self):
        data = super().clean()
        for d in DIMENSIONS:
            g, lim = data.get(f"guarantee_{d}"), data.get(f"limit_{d}")
            if g is not None and lim is not None and lim < g:
                self.add_error(f"limit_{d}", f"The limit ({lim}) must be at least the guarantee ({g}).")
        return data


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for: ci, notebook, scheduler.")
    role = forms.ChoiceField(choices=[("", "my role"), *Role.choices], required=False,
                             help_text="Cap the token below your role, e.g. viewer for a dashboard.")
    expires_at = forms.DateTimeField(required=False, help_text="Optional, e.g. 2027-01-31 00:00.")
