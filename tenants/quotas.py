"""
Quota arithmetic, pure: what is used, guaranteed, borrowable and left, and
whether a would-be request fits. Integers throughout, so 10 + 20 units
never fails against a quota of 30.

Rules (DESIGN.md): a ``realtime`` request must fit what is left of the
guarantee after the realtime work already held; ``interruptible`` and
``offline`` requests may borrow up to the limit. Every slice must fall under
at least one tenant-wide quota: a tenant may use only the pools and models
it was given.
"""

from dataclasses import dataclass

from ocenter import reasons
from ocenter.admission import REALTIME, AdmissionRequest, UsageRow
from ocenter.errors import Refused

DIMENSIONS = ("compute_units", "memory_mib", "slices")
UNITS = {"compute_units": "compute units", "memory_mib": "MiB of GPU memory", "slices": "slices"}
# The most a quota may give, per dimension: what a JSON number holds exactly (2^53), and what the slices column holds.
MAX_AMOUNT = {"compute_units": 2**53, "memory_mib": 2**53, "slices": 2**31 - 1}


def applies(quota, *, project_id, pool_name: str, accelerator_model: str) -> bool:
    """Whether ``quota`` counts work in this project, pool and model."""
    return (
        (quota.project_id is None or quota.project_id == project_id)
        and (not quota.pool_name or quota.pool_name == pool_name)
        and (not quota.accelerator_model or quota.accelerator_model == accelerator_model)
    )


def _zero():
    return dict.fromkeys(DIMENSIONS, 0)


@dataclass(frozen=True)
class QuotaUsage:
    """One quota with what is held under it."""

    quota: object
    used: dict
    used_realtime: dict

    @property
    def guarantee(self) -> dict:
        return self.quota.amounts("guarantee")

    @property
    def limit(self) -> dict:
        return self.quota.amounts("limit")

    @property
    def borrowed(self) -> dict:
        """Held beyond the guarantee: can be reclaimed."""
        return {d: max(0, self.used[d] - self.guarantee[d]) for d in DIMENSIONS}

    @property
    def borrowable(self) -> dict:
        """Still to be borrowed beyond the guarantee, up to the limit."""
        return {d: max(0, self.limit[d] - max(self.used[d], self.guarantee[d])) for d in DIMENSIONS}

    @property
    def left(self) -> dict:
        """Room under the limit, for interruptible and offline work."""
        return {d: max(0, self.limit[d] - self.used[d]) for d in DIMENSIONS}

    @property
    def left_guaranteed(self) -> dict:
        """Room in the guarantee for realtime work."""
        return {d: max(0, self.guarantee[d] - self.used_realtime[d]) for d in DIMENSIONS}

    def as_dict(self) -> dict:
        return {
            "used": self.used,
            "used_realtime": self.used_realtime,
            "guaranteed": self.guarantee,
            "limit": self.limit,
            "borrowed": self.borrowed,
            "borrowable": self.borrowable,
            "left": self.left,
            "left_guaranteed": self.left_guaranteed,
        }


def quota_usage(quota, rows: list[UsageRow]) -> QuotaUsage:
    """Sum the usage rows that fall under ``quota``."""
    used, used_realtime = _zero(), _zero()
    for row in rows:
        if applies(quota, project_id=row.project_id, pool_name=row.pool_name, accelerator_model=row.accelerator_model):
            for d in DIMENSIONS:
                used[d] += getattr(row, d)
                if row.priority == REALTIME:
                    used_realtime[d] += getattr(row, d)
    return QuotaUsage(quota, used, used_realtime)


class OverLimit(Refused):
    """Realtime work that fits its guarantee but not its tenant's limit: it is admitted only once this much is reclaimed.

    ``needs``: ``[(quota, {dimension: amount to free})]``, for every quota whose limit it would cross.
    """

    def __init__(self, detail: str, *, needs: list, **extra):
        super().__init__(detail, **extra)
        self.needs = needs


def _refusal(quota, d: str, *, kind: str, bound: int, held: int, asked: int, realtime: bool = False) -> dict:
    who = "project" if quota.project_id else "tenant"
    figures = {"who": who, "scope": quota.scope_label, "kind": kind, "bound": bound, "unit": UNITS[d], "held": held, "asked": asked}
    return {
        "detail": (reasons.QUOTA_FULL_REALTIME if realtime else reasons.QUOTA_FULL) % figures,
        "code": "quota_exceeded",
        "quota": str(quota.id),
        "dimension": d,
        "bound": kind,
        "limit": bound,
        "used": held,
        "asked": asked,
    }


def check_request(quotas: list, request: AdmissionRequest):
    """Raise ``Refused`` naming the quota, the limit, what is used and what was asked, if the request does not fit.

    Realtime work must fit what is left of the guarantee, and everything a
    tenant holds stays within its limit: realtime work that fits the
    guarantee but not the limit raises ``OverLimit``, saying how much must
    be reclaimed (from the tenant's own offline and borrowed work) first.
    """
    tenant_wide = [q for q in quotas if q.project_id is None]
    for ask in request.slices:
        scope = {"project_id": request.project_id, "pool_name": ask.pool_name, "accelerator_model": ask.accelerator_model}
        if not any(applies(q, **scope) for q in tenant_wide):
            raise Refused(
                reasons.NO_QUOTA % {"model": ask.accelerator_model, "pool": ask.pool_name},
                code="no_quota",
                pool=ask.pool_name,
                accelerator_model=ask.accelerator_model,
            )
    realtime = request.priority == REALTIME
    over_limit = []
    for quota in quotas:
        asked = _zero()
        for ask in request.slices:
            if applies(quota, project_id=request.project_id, pool_name=ask.pool_name, accelerator_model=ask.accelerator_model):
                asked["compute_units"] += ask.compute_units
                asked["memory_mib"] += ask.memory_mib
                asked["slices"] += 1
        if not any(asked.values()):
            continue
        usage = quota_usage(quota, request.usage)
        for d in DIMENSIONS:
            if realtime and asked[d] > usage.left_guaranteed[d]:
                raise Refused(
                    **_refusal(
                        quota,
                        d,
                        kind="guarantee",
                        bound=usage.guarantee[d],
                        held=usage.used_realtime[d],
                        asked=asked[d],
                        realtime=True,
                    )
                )
            if asked[d] > usage.left[d]:
                refusal = _refusal(quota, d, kind="limit", bound=usage.limit[d], held=usage.used[d], asked=asked[d])
                if not realtime:
                    raise Refused(**refusal)
                over_limit.append((quota, refusal))
    if over_limit:
        needs = {}
        for quota, refusal in over_limit:
            needs.setdefault(quota.id, (quota, _zero()))[1][refusal["dimension"]] = refusal["used"] + refusal["asked"] - refusal["limit"]
        first = over_limit[0][1]
        raise OverLimit(**first, needs=list(needs.values()))
