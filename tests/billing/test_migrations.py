"""Moving metering's watermarks into billing's own table keeps every watermark."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("billing", "0004_input_bounds"), ("pools", "0011_allocation_request_digest")]
AFTER = [("billing", "0005_slice_meter"), ("pools", "0012_metering_is_billings")]


@pytest.mark.django_db(transaction=True)
def test_watermarks_move_from_slices_to_billings_table():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    tenant = old.get_model("tenants", "Tenant").objects.create(slug="acme", name="Acme")
    project = old.get_model("tenants", "Project").objects.create(tenant=tenant, slug="main", name="Main")
    pool = old.get_model("pools", "Pool").objects.create(name="bj", region="r", agent_url="http://127.0.0.1:9", token_ciphertext="x")
    node = old.get_model("pools", "Node").objects.create(pool=pool, name="n1")
    gpu = old.get_model("pools", "Accelerator").objects.create(
        pool=pool, node=node, uuid="GPU-1", index=0, vendor="NVIDIA", model="A100", memory_mib=81920
    )
    allocation = old.get_model("pools", "Allocation").objects.create(tenant=tenant, project=project, compute_units=10, memory_mib=10)
    Slice = old.get_model("pools", "Slice")
    mark = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    metered = Slice.objects.create(
        allocation=allocation, accelerator=gpu, pool=pool, index=0, compute_units=10, memory_mib=10, metered_until=mark
    )
    Slice.objects.create(allocation=allocation, accelerator=gpu, pool=pool, index=1, compute_units=10, memory_mib=10, active=False)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = MigrationExecutor(connection).loader.project_state(AFTER).apps
    assert list(new.get_model("billing", "SliceMeter").objects.values_list("slice_id", "metered_until")) == [(metered.id, mark)]
    assert "metered_until" not in {f.name for f in new.get_model("pools", "Slice")._meta.get_fields()}
    latest = MigrationExecutor(connection)
    latest.migrate(latest.loader.graph.leaf_nodes())  # the tests after this one run on the whole schema
