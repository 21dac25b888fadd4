"""Forms for the console's pool pages (and the register command, which shares the checks)."""

from django import forms
from django.core.validators import URLValidator

from pools.models import Pool


class PoolRegisterForm(forms.Form):
    name = forms.SlugField(
        max_length=63,
        help_text="Lower-case letters, digits and '-', as in the agent's configuration: bj-a100.",
    )
    region = forms.CharField(max_length=64, help_text="Where the pool is: cn-beijing, cn-shanghai, edge.")
    agent_url = forms.CharField(
        max_length=255,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The agent's base URL, e.g. http://10.0.0.5:9100",
    )
    token = forms.CharField(
        required=False,
        min_length=16,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="The pool token the agent was started with. Leave empty to have one generated: it is shown once.",
    )

    def clean_name(self):
        name = self.cleaned_data["name"].lower()
        if Pool.objects.filter(name=name).exists():
            raise forms.ValidationError(f"A pool named '{name}' is already registered; choose another name.")
        return name

    def clean_agent_url(self):
        return self.cleaned_data["agent_url"].rstrip("/")
