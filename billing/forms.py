"""Forms for the billing pages; the API's serializers check the same."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models import MAX_GRACE_SECONDS, PRIORITIES, Budget


class PriceForm(forms.Form):
    pool_name = forms.SlugField(required=False, max_length=63, label=_("Pool"), help_text=_("Empty: every pool."))
    accelerator_model = forms.CharField(required=False, max_length=64, label=_("Model"), help_text=_("Empty: every model."))
    template = forms.CharField(
        required=False,
        max_length=64,
        label=_("Template"),
        help_text=_("Empty: every shape. A template (vir05_1c_16g) needs its model."),
    )
    priority = forms.ChoiceField(choices=[("", _("every class")), *PRIORITIES], required=False, label=_("Class"))
    compute_gpu_hour = forms.DecimalField(min_value=Decimal(0), max_digits=14, decimal_places=4, label=_("Per GPU-hour"))
    memory_gib_hour = forms.DecimalField(min_value=Decimal(0), max_digits=14, decimal_places=6, initial=0, label=_("Per GiB-hour"))
    effective_from = forms.DateTimeField(
        label=pgettext_lazy("a price applies from", "From"), help_text=_("e.g. 2026-12-01 00:00; usage before it keeps the old price.")
    )


class BudgetForm(forms.Form):
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label=_("the whole tenant"), label=_("Project"))
    period = forms.ChoiceField(choices=Budget.Period.choices, label=_("Period"))
    amount = forms.DecimalField(min_value=Decimal("0.01"), max_digits=14, decimal_places=2, label=_("Amount"))
    thresholds = forms.CharField(
        initial="50, 80, 100", label=_("Alert thresholds"), help_text=_("Percentages that alert, comma-separated.")
    )
    action = forms.ChoiceField(choices=Budget.Action.choices, label=_("At the limit"))
    grace_seconds = forms.IntegerField(
        min_value=0,
        max_value=MAX_GRACE_SECONDS,
        initial=3600,
        label=_("Grace (seconds)"),
        help_text=_("For “stop everything”: how long after 100 %."),
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = tenant.projects.order_by("slug")

    def clean_thresholds(self):
        try:
            values = sorted({int(v) for v in self.cleaned_data["thresholds"].split(",") if v.strip()})
        except ValueError:
            raise forms.ValidationError(_("Write whole percentages separated by commas, e.g. 50, 80, 100.")) from None
        if not values or values[0] < 1 or values[-1] > 1000:
            raise forms.ValidationError(_("Give at least one percentage, each from 1 to 1000."))
        return values
