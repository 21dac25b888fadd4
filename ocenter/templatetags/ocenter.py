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


@register.filter
def changes(value) -> str:
    """An audit entry's changes as people read them: ``field: before → after`` (or ``field: value``), nothing shown as None."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)

    def shown(v):
        return "—" if v in (None, "") else str(v)

    parts = []
    for name, change in value.items():
        if isinstance(change, list) and len(change) == 2:
            parts.append(f"{name}: {shown(change[0])} → {shown(change[1])}")
        elif isinstance(change, dict):
            parts.append(f"{name}: " + ", ".join(f"{k} {shown(v)}" for k, v in change.items()))
        else:
            parts.append(f"{name}: {shown(change)}")
    return "; ".join(parts)
