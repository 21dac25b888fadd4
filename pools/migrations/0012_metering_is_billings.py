"""Metering's watermarks moved to billing's own table (billing 0005 copied them first): the columns go,
and slices, no longer moved by every metering run, fill their pages again."""

from django.db import migrations


def no_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE pools_slice RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("pools", "0011_allocation_request_digest")]

    operations = [
        migrations.RemoveField(model_name="allocation", name="metered_until"),
        migrations.RemoveField(model_name="slice", name="metered_until"),
        migrations.RunPython(no_fillfactor, migrations.RunPython.noop),
    ]
