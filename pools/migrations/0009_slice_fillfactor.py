"""On PostgreSQL, leave room in each page of slices: every metering run moves every running slice's
watermark, and with room on the page that update is HOT (no index is touched)."""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE pools_slice SET (fillfactor = 70)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE pools_slice RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("pools", "0008_allocation_event_latest_index")]
    operations = [migrations.RunPython(forwards, backwards)]
