"""Template filters for pools' values: states, classes and why GPUs take no work, in the page's language."""

import json

from django import template
from django.utils.translation import gettext

from pools.models import Accelerator, Allocation, Pool

register = template.Library()


@register.filter
def state(value) -> str:
    """An allocation state's value (``queued``) as its label in the page's language; empty: a new allocation."""
    if not value:
        return gettext("new")
    return Allocation.State(value).label if value in Allocation.State.values else value


@register.filter
def priority(value) -> str:
    """A priority class's value (``offline``) as its label in the page's language."""
    return Allocation.Priority(value).label if value in Allocation.Priority.values else value


@register.filter
def pool_state(value) -> str:
    """Why a pool's or node's GPUs take no work (a pool status, a GPU's health, or ``draining``), in the page's language."""
    if value == "draining":
        return gettext("draining")
    for choices in (Pool.Status, Accelerator.Health):
        if value in choices.values:
            return choices(value).label
    return value


@register.filter
def spec(value) -> str:
    """A launch spec as the workload's author reads it: indented JSON (escaped by the template like any text)."""
    return json.dumps(value, indent=2, sort_keys=True)
