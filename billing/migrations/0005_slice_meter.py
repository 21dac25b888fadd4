"""Billing keeps its watermark in a table of its own (it was a column of pools' slices).

The watermarks are copied over; pools' migration 0012 then drops the old
column (this one runs before it). On PostgreSQL the table leaves room in each
page, since every metering run moves every running slice's watermark: with
room on the page that update is HOT (no index is touched).
"""

import django.db.models.deletion
from django.db import migrations, models


def copy_watermarks(apps, schema_editor):
    Slice = apps.get_model("pools", "Slice")
    SliceMeter = apps.get_model("billing", "SliceMeter")
    marks = Slice.objects.filter(metered_until__isnull=False).values_list("id", "metered_until")
    SliceMeter.objects.bulk_create((SliceMeter(slice_id=i, metered_until=at) for i, at in marks.iterator()), batch_size=2000)


def copy_back(apps, schema_editor):
    Slice = apps.get_model("pools", "Slice")
    for slice_id, at in apps.get_model("billing", "SliceMeter").objects.values_list("slice_id", "metered_until").iterator():
        Slice.objects.filter(id=slice_id).update(metered_until=at)


def fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE billing_slicemeter SET (fillfactor = 70)")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_input_bounds"),
        ("pools", "0011_allocation_request_digest"),
    ]
    run_before = [("pools", "0012_metering_is_billings")]

    operations = [
        migrations.CreateModel(
            name="SliceMeter",
            fields=[
                (
                    "slice",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name="meter", serialize=False, to="pools.slice"
                    ),
                ),
                ("metered_until", models.DateTimeField()),
            ],
        ),
        migrations.RunPython(fillfactor, migrations.RunPython.noop),
        migrations.RunPython(copy_watermarks, copy_back),
    ]
