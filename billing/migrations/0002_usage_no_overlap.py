"""On PostgreSQL, refuse overlapping usage intervals of one slice outright (an exclusion constraint)."""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE billing_usagerecord ADD CONSTRAINT usage_no_overlap
    EXCLUDE USING gist (slice_id WITH =, tstzrange(start, "end") WITH &&);
"""
DROP = "ALTER TABLE billing_usagerecord DROP CONSTRAINT IF EXISTS usage_no_overlap;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_price_usage_budgets_statements")]
    operations = [migrations.RunPython(forwards, backwards)]
