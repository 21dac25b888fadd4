"""Reads of money, shaped for pages and the API."""

from decimal import Decimal

from django.db.models import DecimalField, F, Sum

from billing.rating import to_cents

USAGE_GROUPS = {
    "tenant": "tenant__slug",
    "project": "project__slug",
    "pool": "pool_name",
    "model": "accelerator_model",
    "priority": "priority",
    "day": "day",
}


def usage_summary(records, group_by: list[str]) -> list[dict]:
    """Usage summed by the named groups (tenant, project, pool, model, priority, day), with GPU-hours and money."""
    fields = [USAGE_GROUPS[g] for g in group_by]
    rows = (
        records.values(*fields)
        .annotate(
            unit_seconds=Sum(F("seconds") * F("compute_units"), output_field=DecimalField()),
            total=Sum("amount"),
            running_seconds=Sum("seconds"),
        )
        .order_by(*fields)
    )
    return [
        {
            **{g: row[USAGE_GROUPS[g]] for g in group_by},
            "seconds": row["running_seconds"],
            "gpu_hours": (row["unit_seconds"] / 100 / 3600).quantize(Decimal("0.0001")),
            "amount": to_cents(row["total"]),
        }
        for row in rows
    ]
