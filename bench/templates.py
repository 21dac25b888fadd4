"""What rounding a request up to a template costs (issue 16): ``templates_asked``, the one query a fractional request
constrained by vendor, model or pool adds, over 10,000 GPUs of which 2,000 are Ascend NPUs cut to templates, read and
as kept by the process (OCENTER_FLEET_SECONDS); a request preview with and without rounding; and the pool page's list
of templates. Prints JSON; run against a migrated
database (it adds two pools named bench-tpl-*, and removes them after):

    DATABASE_URL=postgres://… DB_CONN_MAX_AGE=600 .venv/bin/python bench/templates.py
"""

import json
import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocenter.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret-0123456789-0123456789")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from pools import selectors  # noqa: E402
from pools.models import Accelerator, Node, Pool  # noqa: E402
from pools.selectors import pool_nodes, pool_templates, templates_asked  # noqa: E402
from pools.services.allocations import allocation_preview  # noqa: E402
from tenants.models import Project  # noqa: E402
from tenants.services import quota_set, tenant_create  # noqa: E402

TEMPLATES = [
    {"name": "vir05_1c_16g", "compute_units": 25, "memory_mib": 16384},
    {"name": "vir10_3c_32g", "compute_units": 50, "memory_mib": 32768},
]
FLEET = [  # (pool, nodes × 8 devices, vendor, model, memory, templates)
    ("bench-tpl-npu", 250, "Huawei", "Ascend-910B", 65536, TEMPLATES),
    ("bench-tpl-gpu", 1000, "NVIDIA", "A100-SXM4-80GB", 81920, []),
]


def _fleet():
    for name, nodes, vendor, model, memory, templates in FLEET:
        pool = Pool.objects.create(name=name, region="bench", agent_url="http://127.0.0.1:9", token_ciphertext="-", status="healthy")
        made = Node.objects.bulk_create([Node(pool=pool, name=f"{name}-{n:04d}") for n in range(nodes)])
        kind = {"vendor": vendor, "model": model, "memory_mib": memory, "templates": templates}
        gpus = [Accelerator(pool=pool, node=node, uuid=f"{node.name}-{i}", index=i, **kind) for node in made for i in range(8)]
        Accelerator.objects.bulk_create(gpus, batch_size=2000)


def _ms(fn, n=300):
    for _ in range(20):
        fn()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 3), "p99_ms": round(times[int(0.99 * (len(times) - 1))], 3)}


def _read(**ask):
    selectors._templates_seen.clear()
    return templates_asked(**ask)


def _explain(**ask) -> str:
    with CaptureQueriesContext(connection) as queries:
        _read(**ask)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN ANALYZE {queries[0]['sql']}")
        return "\n".join(row[0] for row in cursor.fetchall())


def main():
    Pool.objects.filter(name__startswith="bench-tpl-").delete()
    _fleet()
    user, _ = get_user_model().objects.get_or_create(username="bench-templates")
    tenant = tenant_create(actor=None, slug=f"tpl-{int(time.time())}", name="Templates")
    project = Project.objects.create(tenant=tenant, slug="main", name="Main")
    big = {"compute_units": 10**6, "memory_mib": 10**9, "slices": 10**4}
    quota_set(actor=None, tenant=tenant, project=None, **{f"{kind}_{d}": v for d, v in big.items() for kind in ("guarantee", "limit")})
    ask = {"vendor": "", "model": "", "pool_name": "", "region": ""}
    figures = {
        "gpus": Accelerator.objects.filter(pool__name__startswith="bench-tpl-").count(),
        "templates_asked, read": {
            "model (NPU)": _ms(lambda: _read(**{**ask, "model": "Ascend-910B"})),
            "pool (NPU)": _ms(lambda: _read(**{**ask, "pool_name": "bench-tpl-npu"})),
            "vendor (GPU, none cut)": _ms(lambda: _read(**{**ask, "vendor": "NVIDIA"})),
        },
        "templates_asked, kept": _ms(lambda: templates_asked(**{**ask, "model": "Ascend-910B"})),
    }

    def preview(**spec):
        spec = {"count": 1, "priority": "offline", "memory_mib": 10_000, "project": project, **spec}
        return lambda: allocation_preview(actor=user, tenant=tenant, **spec)

    rounded = preview(compute_units=20, accelerator_model="Ascend-910B")
    figures["preview"] = {
        "20 units of an NPU, templates read": _ms(lambda: (selectors._templates_seen.clear(), rounded()), n=100),
        "20 units of an NPU, templates kept": _ms(rounded, n=100),
        "a whole NPU (no rounding)": _ms(preview(compute_units=100, accelerator_model="Ascend-910B"), n=100),
    }
    nodes = pool_nodes(Pool.objects.get(name="bench-tpl-npu"))
    figures["pool_templates (2,000 NPUs, read)"] = _ms(lambda: pool_templates(nodes), n=50)
    figures["explain model"] = _explain(**{**ask, "model": "Ascend-910B"})
    Pool.objects.filter(name__startswith="bench-tpl-").delete()
    print(json.dumps(figures, indent=2))


main()
