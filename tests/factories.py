import factory

from pools.models import Pool
from tenants.models import Tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Tenant {n}")


class PoolFactory(factory.django.DjangoModelFactory):
    """A registered pool; give ``agent`` (an AgentProcess) to point it at a real one."""

    class Meta:
        model = Pool
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"pool-{n}")
    region = "cn-test"
    agent_url = "http://127.0.0.1:9"

    @factory.post_generation
    def agent(pool, create, agent, **kwargs):
        token = agent.token if agent else "unused-token-0123456789"
        if agent:
            pool.agent_url = agent.url
        pool.set_agent_token(token)
        if create:
            pool.save()
