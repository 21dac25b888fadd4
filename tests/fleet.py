"""A real agent with its pool synced into oCenter, and tenants with members and quotas."""

from rest_framework.test import APIClient

from pools.services.sync import pool_sync
from tenants.models import Membership, Project, Role
from tenants.services import quota_set
from tests.agents import a100_nodes
from tests.factories import PoolFactory, TenantFactory

BIG = dict(
    guarantee_compute_units=10_000,
    limit_compute_units=10_000,
    guarantee_memory_mib=10**9,
    limit_memory_mib=10**9,
    guarantee_slices=1000,
    limit_slices=1000,
)


class Fleet:
    """A real agent, its pool synced into oCenter, and tenants with members and quotas."""

    def __init__(self, agents, django_user_model, *, nodes=1, gpus=2, pool="bj"):
        self.agent = agents(pool, [a100_nodes(nodes, gpus=gpus)])
        self.pool = PoolFactory(name=pool, agent=self.agent)
        pool_sync(pool_id=self.pool.id)
        self.pool.refresh_from_db()
        self.user_model = django_user_model

    def tenant(self, slug, *, quota=None, role=Role.MEMBER):
        tenant = TenantFactory(slug=slug)
        project = Project.objects.create(tenant=tenant, slug="main", name="Main")
        user = self.user_model.objects.create_user(f"{slug}-user", password="pw-0123456789")
        Membership.objects.create(tenant=tenant, user=user, role=role)
        quota_set(actor=None, tenant=tenant, project=None, **(quota or BIG))
        client = APIClient()
        client.force_login(user)
        return tenant, project, user, client

    def claims(self):
        return self.agent.client().get("/v1/allocations").json()["allocations"]
