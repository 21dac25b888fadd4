"""
Mirroring each pool's health and inventory from its agent.

The agent is asked first, with no transaction open; then the answer is
applied under a lock on the pool row, so two syncs of one pool (the beat's
and a console "sync now") never interleave their upserts. GPUs are upserted
by uuid; one that stops being reported is marked gone, never deleted, because
allocations and bills will still point at it.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import connections, transaction
from django.utils import timezone

from ocenter.audit import audit_record
from ocenter.enqueue import enqueue_on_commit
from ocenter.events import STAFF_GROUP, publish_on_commit
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU
from pools.agent_client import AgentClient, AgentError, AgentUnreachable
from pools.models import Accelerator, Node, Pool
from pools.services.usage import pool_sample, sample_due
from pools.tasks import reconcile_pool

log = logging.getLogger(__name__)

ACCELERATOR_FIELDS = ("node_id", "index", "vendor", "model", "memory_mib", "health", "health_reason", "enforcement", "fractional",
                      "templates", "gone_at")  # fmt: skip


def pool_sync(*, pool_id) -> Pool:
    """Ask one pool's agent for its health (and inventory, if it changed; and once a minute its metrics); record the answer."""
    pool = Pool.objects.get(id=pool_id)
    client = AgentClient.for_pool(pool)
    health = inventory = metrics = None
    status, detail = Pool.Status.HEALTHY, ""
    try:
        health = client.health()
        if pool.inventory_generation is None or health.get("inventory_generation") != pool.inventory_generation:
            inventory = client.inventory()
    except AgentUnreachable as exc:
        status, detail = Pool.Status.UNREACHABLE, str(exc)
    except AgentError as exc:
        status, detail = Pool.Status.DEGRADED, str(exc)
    if health is not None and sample_due(pool=pool, now=timezone.now()):
        try:
            metrics = client.metrics()
        except AgentError as exc:  # the next sync tries again; health is what this one is about
            log.warning("metrics of %s not read: %s", pool.name, exc)
    now = timezone.now()

    with transaction.atomic():
        pool = Pool.objects.select_for_update().get(id=pool_id)
        old_status = pool.status
        pool.last_sync_at = now
        counts = {}
        if health is not None:
            pool.last_seen_at = now
            pool.backend = str(health.get("backend", ""))[:32]
            pool.agent_version = str(health.get("version", ""))[:32]
            if inventory is not None:
                counts = _apply_inventory(pool, inventory, now)
                pool.inventory_generation = inventory.get("generation")
            if metrics is not None:
                pool_sample(pool=pool, metrics=metrics, now=now)
                pool.sampled_at = now
            if health.get("status") != "ok":
                status, detail = Pool.Status.DEGRADED, health.get("detail") or f"agent reports {health.get('status')}"
            else:
                unhealthy = pool.accelerators.filter(gone_at=None, health=Accelerator.Health.UNHEALTHY).count()
                if unhealthy:
                    status, detail = Pool.Status.DEGRADED, f"{unhealthy} GPUs unhealthy"
        pool.status, pool.status_detail = status, detail[:500]
        pool.save()

        if old_status != status:
            log.info("pool %s: %s -> %s %s", pool.name, old_status, status, detail)
            if old_status == Pool.Status.UNREACHABLE and status != Pool.Status.UNREACHABLE:
                # Back from an outage: agree on who holds what before anything else.
                enqueue_on_commit(reconcile_pool, str(pool_id))
            audit_record(actor=None, action="pool.status", obj=pool, changes={"status": [old_status, status], "detail": detail})
        if any(counts.values()):
            audit_record(actor=None, action="pool.inventory", obj=pool, changes={**counts, "generation": pool.inventory_generation})
        publish_on_commit([STAFF_GROUP], {"kind": "pool.updated", "pool": str(pool.id), "status": status})
    return pool


def _apply_inventory(pool: Pool, inventory: dict, now) -> dict:
    """Upsert nodes and GPUs from the agent's inventory; mark the missing ones gone."""
    nodes = {node.name: node for node in pool.nodes.all()}
    reported_nodes = {n["name"]: n for n in inventory.get("nodes", [])}
    new_nodes = [Node(pool=pool, name=name) for name in reported_nodes if name not in nodes]
    for node in Node.objects.bulk_create(new_nodes):
        nodes[node.name] = node
    changed_nodes = []
    for name, node in nodes.items():
        gone_at = None if name in reported_nodes else (node.gone_at or now)
        if node.gone_at != gone_at:
            node.gone_at = gone_at
            changed_nodes.append(node)
    Node.objects.bulk_update(changed_nodes, ["gone_at"])

    counts = {"added": 0, "gone": 0, "returned": 0, "changed": 0}
    existing = {gpu.uuid: gpu for gpu in pool.accelerators.all()}
    seen, to_create, to_update = set(), [], []
    for name, reported in reported_nodes.items():
        for item in reported.get("accelerators", []):
            values = {
                "node_id": nodes[name].pk,
                "index": item["index"],
                "vendor": item["vendor"],
                "model": item["model"],
                "memory_mib": item["memory_mib"],
                "health": item.get("health", "healthy"),
                "health_reason": str(item.get("health_reason", ""))[:200],
                "enforcement": str(item.get("enforcement", ""))[:16],
                "fractional": bool(item.get("fractional", True)),
                "templates": _templates(item.get("templates")),
                "gone_at": None,
            }
            seen.add(item["uuid"])
            gpu = existing.get(item["uuid"])
            if gpu is None:
                to_create.append(Accelerator(pool=pool, uuid=item["uuid"], **values))
                counts["added"] += 1
            elif any(getattr(gpu, k) != v for k, v in values.items()):
                counts["returned" if gpu.gone_at else "changed"] += 1
                for k, v in values.items():
                    setattr(gpu, k, v)
                to_update.append(gpu)
    for uuid, gpu in existing.items():
        if uuid not in seen and gpu.gone_at is None:
            gpu.gone_at = now
            to_update.append(gpu)
            counts["gone"] += 1
    Accelerator.objects.bulk_create(to_create, batch_size=1000)
    Accelerator.objects.bulk_update(to_update, ACCELERATOR_FIELDS, batch_size=1000)
    return counts


def _sync_in_thread(pool_id):
    try:
        return pool_sync(pool_id=pool_id).status
    except Exception:
        log.exception("sync of pool %s failed", pool_id)
        return "error"
    finally:
        connections.close_all()  # this thread's own connections


def pools_sync_all(*, max_workers: int = 16) -> dict:
    """Sync every pool at once, each in its own thread: a slow or dead agent delays no other pool."""
    pool_ids = list(Pool.objects.values_list("id", flat=True))
    if not pool_ids:
        return {}
    with ThreadPoolExecutor(max_workers=min(max_workers, len(pool_ids)), thread_name_prefix="pool-sync") as executor:
        return dict(zip((str(i) for i in pool_ids), executor.map(_sync_in_thread, pool_ids)))


def _templates(reported) -> list[dict]:
    """A GPU's templates as its agent reports them, kept only where each is well formed, smallest first."""
    if not isinstance(reported, list):
        return []
    kept = [
        {"name": str(t["name"])[:64], "compute_units": t["compute_units"], "memory_mib": t["memory_mib"]}
        for t in reported
        if isinstance(t, dict) and isinstance(t.get("compute_units"), int) and isinstance(t.get("memory_mib"), int) and t.get("name")
        and 1 <= t["compute_units"] <= COMPUTE_UNITS_PER_GPU and t["memory_mib"] > 0
    ]  # fmt: skip
    return sorted(kept, key=lambda t: (t["memory_mib"], t["compute_units"]))
