"""
What the apps owe each other against the direction of their imports, in one file.

Imports run one way: ``ocenter`` foundation ← ``tenants`` ← ``pools`` ← ``billing``.
A few times a lower app needs an answer only a higher one has. The lower app
declares the question here, typed; the higher app registers its answer in its
``AppConfig.ready()``; nothing is named by a string in settings.

| seam | asked by | answered by | why it runs backwards |
| --- | --- | --- | --- |
| ``seams.usage`` | tenants (quota pages, API) | pools | what a tenant holds is slices on GPUs; tenants knows no GPUs |
| ``seams.spend`` | tenants (the tenants list) | billing | money is billing's |
| ``seams.tenant_suspended`` | tenants (suspension) | pools | a suspended tenant's allocations must be released |
| ``seams.notify`` | pools (idle work) | billing | notices, shown and e-mailed, are billing's (budgets send them too) |
| ``seams.cost_since`` | pools (idle work) | billing | what running time cost is in billing's price book |

What operators choose (the admission checks) stays a list in settings, as
Django's password validators are: see ``ocenter.admission``. What runs the
right way needs no seam: billing reads pools' slices and keeps its metering
watermark in a table of its own (``billing.SliceMeter``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from ocenter.admission import UsageRow

# {tenant_id: [UsageRow]}: what each of these tenants holds now, summed per project, pool, model and class.
UsageSource = Callable[[Collection[UUID]], dict[UUID, list[UsageRow]]]
# {tenant_id: {"spent": Decimal, "budget": budget or None, "percent": float or None, "currency": str}} this month.
SpendSource = Callable[[Collection[UUID]], dict[UUID, dict]]
# Called once a tenant's suspension has committed, with the tenant's id and who suspended it.
SuspendedHook = Callable[..., None]
# Tell a tenant's people (tenant_id=, kind=, message=): a notice on its pages, live, and by e-mail.
NotifySink = Callable[..., None]
# ({allocation_id: since}, now) → {allocation_id: Decimal}: what running each one cost from its moment on.
CostSource = Callable[[dict[UUID, datetime], datetime], dict[UUID, Decimal]]


@dataclass
class Seams:
    """The registered answers; a lower app asks through the methods, which say what happens when none is registered."""

    usage_source: UsageSource | None = None
    spend_source: SpendSource | None = None
    suspended_hooks: list[SuspendedHook] = field(default_factory=list)
    notify_sink: NotifySink | None = None
    cost_source: CostSource | None = None

    def usage(self, tenant_ids: Collection[UUID]) -> dict[UUID, list[UsageRow]]:
        """What each tenant holds now (nothing, when no app that holds things is installed)."""
        return self.usage_source(tenant_ids) if self.usage_source else {}

    def spend(self, tenant_ids: Collection[UUID]) -> dict[UUID, dict]:
        """What each tenant spent this month (nothing, when billing is not installed)."""
        return self.spend_source(tenant_ids) if self.spend_source else {}

    def notify(self, *, tenant_id: UUID, kind: str, message: str):
        """Tell a tenant's people (nobody is told when billing, which keeps notices, is not installed)."""
        if self.notify_sink:
            self.notify_sink(tenant_id=tenant_id, kind=kind, message=message)

    def cost_since(self, since: dict[UUID, datetime], now: datetime) -> dict[UUID, Decimal]:
        """What running each allocation cost since its moment (nothing known without billing)."""
        return self.cost_source(since, now) if self.cost_source else {}

    def tenant_suspended(self, *, tenant_id: UUID, actor):
        """Tell every registered app that a tenant was suspended."""
        for hook in self.suspended_hooks:
            hook(tenant_id=tenant_id, actor=actor)


seams = Seams()
