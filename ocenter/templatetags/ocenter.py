"""Template helpers shared by every page."""

from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.dateparse import parse_datetime
from django.utils.formats import number_format
from django.utils.translation import gettext, ngettext

from ocenter.reasons import say

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


@register.filter
def reason(value) -> str:
    """A stored reason (English, as the API gives it) in the page's language."""
    return say(value or "")


@register.filter
def mib(value) -> str:
    """GPU memory as people read it: whole GiB where it is (``16 GiB``), else MiB (``1,500 MiB``), thousands grouped."""
    if value is None or value == "":
        return ""
    value = int(value)
    if value >= 1024 and value % 1024 == 0:
        return f"{intcomma(value // 1024)} GiB"
    return f"{intcomma(value)} MiB"


@register.filter
def price(value) -> str:
    """A price with two decimals, or as many more as it needs (``10.40``, ``0.02``, ``0.0125``): a column reads alike."""
    if value is None or value == "":
        return ""
    value = Decimal(value).normalize()
    places = max(2, -value.as_tuple().exponent)
    return number_format(value, places, use_l10n=True, force_grouping=True)


@register.filter
def actor(label) -> str:
    """An audit entry's or event's actor label (stored in English) in the page's language."""
    if label == "system":
        return gettext("system")
    if " via token " in label:
        user, credential = label.split(" via token ", 1)
        return gettext("%(user)s via token %(token)s") % {"user": user, "token": credential}
    if label.startswith("token "):
        return gettext("token %(token)s") % {"token": label.removeprefix("token ")}
    return label


@register.filter
def units(value) -> str:
    """Compute units (100 make a whole GPU) with their name, in the page's language."""
    count = int(value or 0)
    return ngettext("%(count)s unit", "%(count)s units", count) % {"count": intcomma(count)}


@register.filter
def amount(value, dimension: str) -> str:
    """An amount of a quota's ``dimension``: compute units named, memory in GiB or MiB, slices counted."""
    if dimension == "memory_mib":
        return mib(value)
    if dimension == "compute_units":
        return units(value)
    return intcomma(value)


@register.filter
def moment(value):
    """An ISO 8601 time (as events carry them) as a datetime, for ``date`` and ``time`` to show in the page's zone."""
    return parse_datetime(value) if isinstance(value, str) else value
