"""
Allocations, by what happens to them. The console, the portal, the API and Celery all call these.

- ``request``: admit, place and claim a request, or queue it; realtime work reclaims room; job arrays; the preview.
- ``claim``: claim a placed allocation's slices on their agents (a job array's, a call a pool); a 409 places again.
- ``release``: release, preempt, end leases, release a suspended tenant's work.
- ``queue``: place waiting requests as room frees.
- ``reclaim``: the running work realtime work makes give way, within its tenant's limit and on the GPUs.
- ``room``: where a request would go, admission, and the statements that take and give back room.
- ``history``: every transition recorded, audited and told.

Each module imports only those below it in this list.
"""

from pools.services.allocations.claim import allocation_claim
from pools.services.allocations.queue import queue_drain
from pools.services.allocations.release import (
    allocation_preempt,
    allocation_release,
    leases_expire,
    release_finish,
    tenant_allocations_release,
)
from pools.services.allocations.request import allocation_preview, allocation_request, allocation_request_array

__all__ = [
    "allocation_claim",
    "allocation_preempt",
    "allocation_preview",
    "allocation_release",
    "allocation_request",
    "allocation_request_array",
    "leases_expire",
    "queue_drain",
    "release_finish",
    "tenant_allocations_release",
]
