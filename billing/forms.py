"""Forms for the billing pages; the API's serializers check the same."""

from decimal import Decimal

from django import forms

from billing.models import PRIORITIES, Budget


class PriceForm(forms.Form):
    pool_name = forms.SlugField(required=False, max_length=63, help_text="Empty: every pool.")
    accelerator_model = forms.CharField(required=False, max_length=64, help_text="Empty: every model.")
    priority = forms.ChoiceField(choices=[("", "every class"), *PRIORITIES], required=False)
    compute_gpu_hour = forms.DecimalField(min_value=Decimal(0), max_digits=14, decimal_places=4, label="Per GPU-hour")
    memory_gib_hour = forms.DecimalField(min_value=Decimal(0), max_digits=14, decimal_places=6, initial=0, label="Per GiB-hour")
    effective_from = forms.DateTimeField(help_text="e.g. 2026-12-01 00:00; usage before it keeps the old price.")


class BudgetForm(forms.Form):
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label="the whole tenant")
    period = forms.ChoiceField(choices=Budget.Period.choices)
    amount = forms.DecimalField(min_value=Decimal("0.01"), max_digits=14, decimal_places=2)
    thresholds = forms.CharField(initial="50, 80, 100", help_text="Percentages that alert, comma-separated.")
    action = forms.ChoiceField(choices=Budget.Action.choices)
    grace_seconds = forms.IntegerField(min_value=0, initial=3600, help_text="For “stop everything”: how long after 100 %.")

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = tenant.projects.order_by("slug")

    def clean_thresholds(self):
        try:
            values = sorted({int(v) for v in self.cleaned_data["thresholds"].split(",") if v.strip()})
        except ValueError:
            raise forms.ValidationError("Write whole percentages separated by commas, e.g. 50, 80, 100.") from None
        if not values or values[0] < 1 or values[-1] > 1000:
            raise forms.ValidationError("Give at least one percentage, each from 1 to 1000.")
        return values
