"""
Idle GPUs reclaimed: running work whose every slice shows no work for the
policy's minutes is flagged idle and its owner told; after the grace, offline
and interruptible work is released (or moved to offline) and realtime work is
only warned. Each step is audited and pushed live. What a slice did comes
from the allocation series (``pools.services.usage``).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ocenter import reasons
from ocenter.audit import actor_label, audit_record
from ocenter.errors import DomainError
from ocenter.events import STAFF_GROUP, publish_on_commit, tenant_group
from ocenter.seams import seams
from pools import series
from pools.models import Allocation, AllocationEvent, AllocationSeries, IdlePolicy
from pools.selectors import idle_policy_for
from pools.services.allocations.release import allocation_release

State = Allocation.State
Priority = Allocation.Priority
# Of the policy's minutes, how many must have a point before silence counts as idleness (an agent
# that did not answer for a while says nothing about the work).
COVERAGE = 0.5
UNKNOWN = object()


@transaction.atomic
def idle_policy_set(*, actor, tenant=None, threshold_percent: int, idle_minutes: int, grace_minutes: int, action: str) -> IdlePolicy:
    """Set the platform's default policy (``tenant`` None) or one tenant's own."""
    policy = IdlePolicy.objects.select_for_update().filter(tenant=tenant, platform=tenant is None).first()
    policy = policy or IdlePolicy(tenant=tenant, platform=tenant is None)
    after = {"threshold_percent": threshold_percent, "idle_minutes": idle_minutes, "grace_minutes": grace_minutes, "action": action}
    before = {name: getattr(policy, name) for name in after} if policy.pk else {}
    if policy.pk and before == after:
        return policy  # the same policy again: nothing to write, nothing to record
    for name, value in after.items():
        setattr(policy, name, value)
    policy.save()
    audit_record(actor=actor, action="idle_policy.set", obj=policy, tenant_id=tenant.id if tenant else None,
                 changes={k: [before.get(k), v] for k, v in after.items() if before.get(k) != v})  # fmt: skip
    return policy


@transaction.atomic
def idle_policy_clear(*, actor, tenant):
    """Drop a tenant's own policy: the platform's applies to it again."""
    deleted, _ = IdlePolicy.objects.filter(tenant=tenant).delete()
    if deleted:
        audit_record(actor=actor, action="idle_policy.clear", obj=tenant, tenant_id=tenant.id)


def allocations_idle_check(*, now=None) -> dict:
    """Flag running work that went idle, clear what works again, and act on what stayed idle past its grace (periodic)."""
    now = now or timezone.now()
    policies = {p.tenant_id: p for p in IdlePolicy.objects.all()}
    longest = max([idle_policy_for(None, policies).idle_minutes, *(p.idle_minutes for p in policies.values())])
    running = list(Allocation.objects.filter(state=State.RUNNING).select_related("tenant"))
    history = _recent_points(running, since=now - timedelta(minutes=longest), now=now)
    counts = {"flagged": 0, "working_again": 0, "acted": 0}
    for allocation in running:
        policy = idle_policy_for(allocation.tenant_id, policies)
        idle_since = _idle_since(allocation, history.get(allocation.id, []), policy, now)
        if idle_since is UNKNOWN:  # too few points to tell (its agent was away): nothing changes
            continue
        if idle_since is None:
            if allocation.idle_flagged_at or allocation.idle_since:
                _mark(allocation, "active", idle_since=None, idle_flagged_at=None, idle_acted_at=None)
                counts["working_again"] += 1
        elif allocation.idle_flagged_at is None:
            _flag(allocation, idle_since, policy, now)
            counts["flagged"] += 1
        elif allocation.idle_acted_at is None and now >= allocation.idle_flagged_at + timedelta(minutes=policy.grace_minutes):
            _act(allocation, policy, now)
            counts["acted"] += 1
    return counts


def _recent_points(allocations, *, since, now) -> dict:
    """``{allocation_id: [(at, busiest, processes)]}`` since ``since`` (minute points, oldest first)."""
    rows = AllocationSeries.objects.filter(allocation__in=allocations, resolution=series.MINUTE,
                                           start__gte=series.window(since, series.MINUTE)[0]).order_by("start")  # fmt: skip
    points: dict = {}
    for row in rows:
        busiest, processes = series.read_bytes(row.busiest), series.read_bytes(row.processes)
        for slot in range(series.WIDTH[series.MINUTE]):
            at = row.start + slot * series.STEP[series.MINUTE]
            if since <= at <= now and busiest[slot] is not None:
                points.setdefault(row.allocation_id, []).append((at, busiest[slot], processes[slot] or 0))
    return points


def _idle_since(allocation: Allocation, points: list, policy: IdlePolicy, now):
    """When the allocation's idle stretch began, if it has lasted the policy's minutes; None while it works (or has not run
    that long); UNKNOWN when too few minutes were sampled to tell."""
    window = timedelta(minutes=policy.idle_minutes)
    if allocation.started_at is None or allocation.started_at > now - window:
        return None
    recent = [p for p in points if p[0] >= now - window]
    if len(recent) < max(1, COVERAGE * policy.idle_minutes):
        return UNKNOWN
    if any(busiest >= policy.threshold_percent or processes for _, busiest, processes in recent):
        return None
    working = [at for at, busiest, processes in points if busiest >= policy.threshold_percent or processes]
    # The stretch began after its last point of work, or (with none in sight) at its first point: a point is a minute.
    began = working[-1] + series.STEP[series.MINUTE] if working else max(allocation.started_at, points[0][0] - series.STEP[series.MINUTE])
    if now - began < window:
        return None
    return allocation.idle_since or began


def _spent(allocation: Allocation, since, now):
    return seams.cost_since({allocation.id: since}, now).get(allocation.id)


def _flag(allocation: Allocation, idle_since, policy: IdlePolicy, now):
    _mark(allocation, "idle", idle_since=idle_since, idle_flagged_at=now)
    spent = _spent(allocation, idle_since, now)
    message = reasons.IDLE_FLAGGED % {
        "allocation": str(allocation.id)[:8],
        "since": f"{timezone.localtime(idle_since):%Y-%m-%d %H:%M}",
        "threshold": policy.threshold_percent,
        "minutes": policy.idle_minutes,
        "spent": reasons.SPENT_WHILE_IDLE % {"amount": spent, "currency": settings.OCENTER_CURRENCY} if spent else "",
        "next": _what_happens(allocation, policy),
    }
    seams.notify(tenant_id=allocation.tenant_id, kind="idle", message=message)


def _what_happens(allocation: Allocation, policy: IdlePolicy) -> str:
    if allocation.priority == Priority.REALTIME:
        return reasons.STAYS_REALTIME
    if policy.action == IdlePolicy.Action.NOTIFY:
        return reasons.NOTHING_MORE
    demoted = policy.action == IdlePolicy.Action.DEMOTE and allocation.priority == Priority.INTERRUPTIBLE
    return (reasons.WILL_BE_DEMOTED if demoted else reasons.WILL_BE_RELEASED) % {"minutes": policy.grace_minutes}


def _act(allocation: Allocation, policy: IdlePolicy, now):
    """The grace is over: warn realtime work, release (or move to offline) the rest, as the policy says."""
    reason = reasons.IDLE_SINCE % {"since": f"{timezone.localtime(allocation.idle_since):%Y-%m-%d %H:%M}"}
    if allocation.priority == Priority.REALTIME or policy.action == IdlePolicy.Action.NOTIFY:
        _mark(allocation, "idle_warned", idle_acted_at=now)
        seams.notify(tenant_id=allocation.tenant_id, kind="idle",
                     message=reasons.STILL_IDLE % {"allocation": str(allocation.id)[:8], "reason": reason})  # fmt: skip
    elif policy.action == IdlePolicy.Action.DEMOTE and allocation.priority == Priority.INTERRUPTIBLE:
        allocation_demote(actor=None, allocation=allocation, reason=reason)
    else:
        _mark(allocation, "idle_released", idle_acted_at=now)
        allocation_release(actor=None, allocation=allocation, reason=reasons.RELEASED % {"reason": reason})


def _mark(allocation: Allocation, what: str, **fields):
    """Save the idle fields, audit the step and tell the allocation's tenant and staff, live."""
    with transaction.atomic():
        Allocation.objects.filter(id=allocation.id).update(**fields)
        for name, value in fields.items():
            setattr(allocation, name, value)
        audit_record(actor=None, action=f"allocation.{what}", obj=allocation, tenant_id=allocation.tenant_id,
                     changes={k: str(v) if v else None for k, v in fields.items()})  # fmt: skip
        _tell(allocation, what)


def _tell(allocation: Allocation, what: str):
    """An idle step, pushed once committed (its row is drawn again, with its idle badge)."""
    event = {"kind": "allocation.idle", "allocation": str(allocation.id), "tenant": str(allocation.tenant_id), "idle": what,
             "from": allocation.state, "state": allocation.state, "at": timezone.now().isoformat()}  # fmt: skip
    publish_on_commit([STAFF_GROUP, tenant_group(allocation.tenant_id)], event)


def allocation_demote(*, actor, allocation: Allocation, reason: str) -> Allocation:
    """Move running interruptible work to offline (it runs on, first in line to be reclaimed, at the offline price)."""
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation.id)
        if allocation.state != State.RUNNING or allocation.priority != Priority.INTERRUPTIBLE:
            raise DomainError(f"only running interruptible work moves to offline; this is {allocation.priority} and {allocation.state}")
        now = timezone.now()
        Allocation.objects.filter(id=allocation.id).update(priority=Priority.OFFLINE, idle_acted_at=now)
        allocation.priority, allocation.idle_acted_at = Priority.OFFLINE, now
        # A step of its history (running → running): metering cuts its records here, at the new class's price.
        AllocationEvent.objects.create(allocation=allocation, from_state=State.RUNNING, to_state=State.RUNNING,
                                       previous_priority=Priority.INTERRUPTIBLE, actor_label=actor_label(actor),
                                       reason=(reasons.MOVED_TO_OFFLINE % {"reason": reason})[:500])  # fmt: skip
        audit_record(actor=actor, action="allocation.demote", obj=allocation, tenant_id=allocation.tenant_id,
                     changes={"priority": [Priority.INTERRUPTIBLE, Priority.OFFLINE], "reason": reason})  # fmt: skip
        _tell(allocation, "demoted")
    seams.notify(
        tenant_id=allocation.tenant_id, kind="idle", message=reasons.WAS_DEMOTED % {"allocation": str(allocation.id)[:8], "reason": reason}
    )
    return allocation
