"""Forms for the console's pool pages (and the register command, which shares the checks)."""

from django import forms
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _

from pools.models import MAX_SLICE_MEMORY_MIB, Accelerator, Allocation, IdlePolicy, Pool
from tenants.models import Tenant


class PoolRegisterForm(forms.Form):
    name = forms.SlugField(
        max_length=63,
        label=_("Name"),
        help_text=_("Lower-case letters, digits and '-', as in the agent's configuration: bj-a100."),
    )
    region = forms.CharField(max_length=64, label=_("Region"), help_text=_("Where the pool is: cn-beijing, cn-shanghai, edge."))
    agent_url = forms.CharField(
        max_length=255,
        validators=[URLValidator(schemes=["http", "https"])],
        label=_("Agent URL"),
        help_text=_("The agent's base URL, e.g. http://10.0.0.5:9100"),
    )
    token = forms.CharField(
        required=False,
        min_length=16,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        label=_("Token"),
        help_text=_("The pool token the agent was started with. Leave empty to have one generated: it is shown once."),
    )

    def clean_name(self):
        name = self.cleaned_data["name"].lower()
        if Pool.objects.filter(name=name).exists():
            raise forms.ValidationError(_("A pool named '%(name)s' is already registered; choose another name.") % {"name": name})
        return name

    def clean_agent_url(self):
        return self.cleaned_data["agent_url"].rstrip("/")


class AllocationRequestForm(forms.Form):
    """The portal's request form; the API's serializer checks the same."""

    project = forms.ModelChoiceField(queryset=None, empty_label=None, label=_("Project"))
    count = forms.IntegerField(min_value=1, max_value=64, initial=1, label=_("Count"), help_text=_("Slices, each on its own GPU."))
    compute_units = forms.IntegerField(
        min_value=1, max_value=100, initial=25, label=_("Compute units"), help_text=_("Per slice; 100 = a whole GPU.")
    )
    memory_mib = forms.IntegerField(
        min_value=1, max_value=MAX_SLICE_MEMORY_MIB, initial=16384, label=_("Memory (MiB)"), help_text=_("GPU memory per slice.")
    )
    priority = forms.ChoiceField(
        choices=Allocation.Priority.choices,
        initial=Allocation.Priority.OFFLINE,
        label=_("Priority"),
        help_text=_("realtime must fit your guarantee; interruptible and offline may borrow and can be reclaimed."),
    )
    accelerator_model = forms.ChoiceField(required=False, label=_("Model"))
    pool_name = forms.ChoiceField(required=False, label=_("Pool"))
    lease_seconds = forms.IntegerField(
        required=False,
        min_value=60,
        max_value=90 * 86400,
        label=_("Lease (seconds)"),
        help_text=_("Released when it ends; empty: until you release it."),
    )
    requeue_on_preempt = forms.BooleanField(required=False, label=_("Requeue if preempted"))

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = tenant.projects.order_by("slug")
        models = sorted(set(Accelerator.objects.filter(gone_at=None).values_list("model", flat=True)))
        self.fields["accelerator_model"].choices = [("", _("any")), *((m, m) for m in models)]
        self.fields["pool_name"].choices = [("", _("any")), *((p, p) for p in Pool.objects.values_list("name", flat=True))]


class IdlePolicyForm(forms.ModelForm):
    """The idle policy's figures; staff name a tenant to set its own (empty: the platform's default)."""

    tenant = forms.SlugField(
        required=False, label=_("Tenant"), help_text=_("Empty: the platform's default, for every tenant without its own.")
    )

    class Meta:
        model = IdlePolicy
        fields = ["threshold_percent", "idle_minutes", "grace_minutes", "action"]
        labels = {"threshold_percent": _("Below (percent of its compute)"), "idle_minutes": _("For (minutes)"),
                  "grace_minutes": _("Then, after (minutes)"), "action": _("Do")}  # fmt: skip

    def clean_tenant(self):
        slug = self.cleaned_data["tenant"]
        if not slug:
            return None
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise forms.ValidationError(_("No tenant '%(slug)s'.") % {"slug": slug})
        return tenant
