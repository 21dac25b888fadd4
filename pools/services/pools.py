"""Registering pools."""

from django.db import transaction

from ocenter.audit import audit_record
from ocenter.enqueue import enqueue_on_commit
from ocenter.events import STAFF_GROUP, publish_on_commit
from ocenter.lib.secretbox import new_token
from pools.models import Pool
from pools.tasks import sync_pool

POOL_TOKEN_PREFIX = "ocp"


@transaction.atomic
def pool_register(*, actor, name: str, region: str, agent_url: str, token: str = "") -> tuple[Pool, str]:
    """Register a pool; return it with its agent token, the only time the token is shown.

    With no token given, one is generated: configure the agent with it.
    A sync is started once the pool is committed.
    """
    token = token or new_token(POOL_TOKEN_PREFIX)
    pool = Pool(name=name, region=region, agent_url=agent_url)
    pool.set_agent_token(token)
    pool.save()
    audit_record(
        actor=actor,
        action="pool.register",
        obj=pool,
        changes={"name": name, "region": region, "agent_url": agent_url, "token_prefix": pool.token_prefix},
    )

    enqueue_on_commit(sync_pool, str(pool.id))
    return pool, token


@transaction.atomic
def pool_set_draining(*, actor, pool: Pool, draining: bool, node=None) -> Pool:
    """Drain (or undrain) a pool, or one of its nodes: no new placements there; running work is left alone."""
    target = node or pool
    if target.draining != draining:
        target.draining = draining
        target.save(update_fields=["draining"])
        audit_record(
            actor=actor,
            action=f"{'node' if node else 'pool'}.{'drain' if draining else 'undrain'}",
            obj=target,
            changes={"draining": [not draining, draining]},
        )
        publish_on_commit([STAFF_GROUP], {"kind": "pool.updated", "pool": str(pool.id), "status": pool.status})
    return pool
