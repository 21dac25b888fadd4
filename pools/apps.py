from django.apps import AppConfig


class PoolsConfig(AppConfig):
    """Pools, their hardware, allocations and the agents that carry them out."""

    name = "pools"

    def ready(self):
        from ocenter import metrics
        from ocenter.seams import seams
        from pools.metrics import PoolsCollector
        from pools.selectors import tenant_usage
        from pools.services.allocations import tenant_allocations_release

        seams.usage_source = tenant_usage
        metrics.register(PoolsCollector())
        if tenant_allocations_release not in seams.suspended_hooks:
            seams.suspended_hooks.append(tenant_allocations_release)
