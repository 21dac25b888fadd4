"""Template helpers shared by every page."""

from django import template

register = template.Library()


@register.simple_tag
def percent(part, whole) -> str:
    """``part`` as a percentage of ``whole``, 0–100, for bar widths."""
    if not whole:
        return "0"
    return f"{min(100.0, 100.0 * part / whole):.1f}"


@register.filter
def get(mapping, key):
    """``mapping[key]`` in a template (None when absent)."""
    return mapping.get(key) if mapping else None
