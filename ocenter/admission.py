"""
The admission contract. ``pools`` builds an ``AdmissionRequest`` for a request
it has placed and runs every check named in ``settings.OCENTER_ADMISSION_CHECKS``
(as Django runs password validators); ``tenants`` contributes the quota check,
``billing`` the budget check. A check refuses by raising ``Refused``.
"""

from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.utils.module_loading import import_string

REALTIME = "realtime"


@dataclass(frozen=True)
class SliceAsk:
    """One slice of a request, where placement would put it."""

    pool_name: str
    accelerator_model: str
    compute_units: int
    memory_mib: int
    template: str = ""  # the template its shape was rounded up to (hardware cut to templates), priced as such


@dataclass(frozen=True)
class UsageRow:
    """What a tenant holds now, summed per project, pool, model and priority class."""

    project_id: UUID | None
    pool_name: str
    accelerator_model: str
    priority: str
    compute_units: int
    memory_mib: int
    slices: int


@dataclass
class AdmissionRequest:
    """A would-be allocation: who asks, for what, and what the tenant already holds."""

    tenant_id: UUID
    project_id: UUID | None
    priority: str
    slices: list[SliceAsk]
    usage: list[UsageRow] = field(default_factory=list)
    lease_seconds: int | None = None
    # The tenant's quotas (tenant-wide and per project), when the caller read them already under the tenant's lock.
    quotas: list | None = None


def run_admission_checks(request: AdmissionRequest):
    """Run every configured check; the first refusal propagates."""
    for path in settings.OCENTER_ADMISSION_CHECKS:
        import_string(path)(request)
