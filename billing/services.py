"""
Metering, budgets and statements. Each runs in transactions that write
their rows, their audit entries and their events together.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import DecimalField, F, Q, Sum
from django.utils import timezone

from billing.models import Adjustment, Budget, BudgetAlert, Notification, Price, SliceMeter, Statement, StatementLine, UsageRecord
from billing.rating import amount, cut, midnights, month_start, next_month, seconds_between, to_cents
from billing.selectors import PriceBook, budget_period, budget_spent, local_tz
from ocenter.audit import audit_record
from ocenter.errors import Conflict, DomainError
from ocenter.events import STAFF_GROUP, publish_on_commit, tenant_group
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU
from pools.models import Allocation, AllocationEvent, Slice
from pools.services.allocations import allocation_release
from tenants.models import Role

log = logging.getLogger(__name__)
State = Allocation.State


# --- price book ----------------------------------------------------------------


@transaction.atomic
def price_set(
    *,
    actor,
    pool_name: str = "",
    accelerator_model: str = "",
    priority: str = "",
    compute_gpu_hour: Decimal,
    memory_gib_hour: Decimal = Decimal(0),
    effective_from: datetime,
) -> Price:
    """Add a price from a moment on. Past usage keeps the prices it was metered at."""
    if Price.objects.filter(
        pool_name=pool_name, accelerator_model=accelerator_model, priority=priority, effective_from=effective_from
    ).exists():
        raise Conflict("a price for this pool, model and class already starts at that moment", field="effective_from")
    price = Price.objects.create(
        pool_name=pool_name,
        accelerator_model=accelerator_model,
        priority=priority,
        compute_gpu_hour=compute_gpu_hour,
        memory_gib_hour=memory_gib_hour,
        effective_from=effective_from,
    )
    audit_record(
        actor=actor,
        action="price.create",
        obj=price,
        changes={"scope": str(price), "compute_gpu_hour": str(compute_gpu_hour), "memory_gib_hour": str(memory_gib_hour)},
    )
    return price


# --- metering ------------------------------------------------------------------


def _running_intervals(events: list[AllocationEvent], now: datetime) -> list[tuple[datetime, datetime]]:
    """[entered running, left running) for each stretch, the last one open until ``now``."""
    intervals, since = [], None
    for event in events:
        if event.to_state == State.RUNNING and since is None:
            since = event.at
        elif event.from_state == State.RUNNING and event.to_state != State.RUNNING and since is not None:
            intervals.append((since, event.at))
            since = None
    if since is not None:
        intervals.append((since, now))
    return [(a, min(b, now)) for a, b in intervals if min(b, now) > a]


# One statement meters every slice of one pool, model and class that ran all through its window:
# it moves the slices' watermarks and writes their records, priced and rounded as rating.amount does.
# It reads pools' tables and writes only billing's.
_METER_STEADY_SQL = """
    WITH picked AS (
        SELECT s.id, s.allocation_id, a.tenant_id, a.project_id, s.compute_units, s.memory_mib, m.metered_until AS since
          FROM billing_slicemeter m
          JOIN pools_slice s ON s.id = m.slice_id
          JOIN pools_allocation a ON a.id = s.allocation_id
          JOIN pools_accelerator g ON g.id = s.accelerator_id
         WHERE a.state = 'running' AND s.active AND s.pool_id = %(pool_id)s AND g.model = %(model)s AND a.priority = %(priority)s
           AND m.metered_until >= %(floor)s AND m.metered_until < %(now)s
           AND NOT EXISTS (SELECT 1 FROM pools_allocationevent e WHERE e.allocation_id = a.id AND e.at > m.metered_until)
    ), moved AS (
        UPDATE billing_slicemeter SET metered_until = %(now)s FROM picked WHERE billing_slicemeter.slice_id = picked.id
    )
    INSERT INTO billing_usagerecord (slice_id, allocation_id, tenant_id, project_id, pool_name, accelerator_model, priority,
                                     start, "end", day, seconds, compute_units, memory_mib, price_id, amount)
    SELECT id, allocation_id, tenant_id, project_id, %(pool_name)s, %(model)s, %(priority)s, since, %(now)s, %(day)s,
           EXTRACT(EPOCH FROM %(now)s - since), compute_units, memory_mib, %(price_id)s,
           round((compute_units::numeric / %(units_per_gpu)s * %(compute_gpu_hour)s + memory_mib::numeric / 1024 * %(memory_gib_hour)s)
                 * EXTRACT(EPOCH FROM %(now)s - since) / 3600, 6)
      FROM picked
    RETURNING tenant_id
"""


def _meter_steady(book: PriceBook, now: datetime, tz) -> list:
    """PostgreSQL: meter in bulk the slices that ran all through [metered_until, now) at one price on one day.

    That is nearly every slice on a run a minute after the last. Returns the
    tenants of the records written; every other slice is left to the exact,
    slice-by-slice path (a first run, a state change, a price change or a
    midnight in the window).
    """
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)  # (exactly at it: nothing is steady)
    scopes = (
        Slice.objects.filter(active=True, allocation__state=State.RUNNING, meter__metered_until__lt=now)
        .values_list("pool_id", "pool__name", "accelerator__model", "allocation__priority")
        .distinct()
        .order_by()
    )
    tenants = []
    with connection.cursor() as cursor:
        for pool_id, pool_name, model, priority in scopes:
            changes = [b for b in book.changes(pool_name, model, priority) if b < now]
            price = book.at(pool_name, model, priority, max(changes)) if changes else None
            if price is None:
                continue  # the exact path says why it is not billed
            cursor.execute(
                _METER_STEADY_SQL,
                {
                    "pool_id": pool_id,
                    "pool_name": pool_name,
                    "model": model,
                    "priority": priority,
                    "now": now,
                    "floor": max(max(changes), midnight),
                    "day": now.astimezone(tz).date(),
                    "price_id": price.id,
                    "compute_gpu_hour": price.compute_gpu_hour,
                    "memory_gib_hour": price.memory_gib_hour,
                    "units_per_gpu": COMPUTE_UNITS_PER_GPU,
                },
            )
            tenants += [row[0] for row in cursor.fetchall()]
    return tenants


def usage_meter(*, now: datetime | None = None) -> int:
    """Turn running time since the last run into priced usage records; returns how many were written.

    Each slice has a watermark (``SliceMeter``), moved in the same transaction
    as the records, so a second run (or one after a crash) starts where the
    last commit ended; and the database refuses any record that would charge
    a moment twice, so two runs at once cannot both write.
    """
    now = now or timezone.now()
    book, tz = PriceBook(), local_tz()
    try:
        with transaction.atomic():
            steady = _meter_steady(book, now, tz) if connection.vendor == "postgresql" else []
            exact = _meter_exact(book, now, tz)
            # Spend moved: tell each tenant's pages, and the console.
            for tenant_id in set(steady) | {r.tenant_id for r in exact}:
                publish_on_commit([tenant_group(tenant_id)], {"kind": "usage.metered", "tenant": str(tenant_id)})
            if steady or exact:
                publish_on_commit([STAFF_GROUP], {"kind": "usage.metered", "tenant": None})
    except IntegrityError:
        log.warning("another metering run got there first; nothing written by this one")
        return 0
    return len(steady) + len(exact)


def _meter_exact(book: PriceBook, now: datetime, tz) -> list[UsageRecord]:
    """Meter slice by slice, from their allocations' history: every running stretch, cut at price changes and midnights."""
    slices = list(
        Slice.objects.filter(started_at__isnull=False, started_at__lt=now)
        .annotate(metered_until=F("meter__metered_until"))
        .filter(Q(metered_until__isnull=True) | Q(metered_until__lt=now))
        .filter(
            Q(allocation__state__in=Allocation.ACTIVE_STATES)
            | Q(metered_until__isnull=True)
            | Q(allocation__ended_at__gt=F("metered_until"))
        )
        .select_related("allocation", "accelerator", "pool")
    )
    if not slices:
        return []
    events = defaultdict(list)
    for event in AllocationEvent.objects.filter(allocation_id__in={s.allocation_id for s in slices}).order_by("at", "id"):
        events[event.allocation_id].append(event)
    records = []
    for s in slices:
        a = s.allocation
        since = s.metered_until or s.started_at
        for start, end in _running_intervals(events[a.id], now):
            start = max(start, since)
            if end <= start:
                continue
            boundaries = book.changes(s.pool.name, s.accelerator.model, a.priority) + midnights(start, end, tz)
            for piece_start, piece_end in cut(start, end, boundaries):
                price = book.at(s.pool.name, s.accelerator.model, a.priority, piece_start)
                if price is None:
                    log.warning("no price for %s/%s/%s at %s: not billed", s.pool.name, s.accelerator.model, a.priority, piece_start)
                    continue
                seconds = seconds_between(piece_start, piece_end)
                records.append(
                    UsageRecord(
                        slice=s,
                        allocation=a,
                        tenant_id=a.tenant_id,
                        project_id=a.project_id,
                        pool_name=s.pool.name,
                        accelerator_model=s.accelerator.model,
                        priority=a.priority,
                        start=piece_start,
                        end=piece_end,
                        day=piece_start.astimezone(tz).date(),
                        seconds=seconds,
                        compute_units=s.compute_units,
                        memory_mib=s.memory_mib,
                        price=price,
                        amount=amount(
                            compute_units=s.compute_units,
                            memory_mib=s.memory_mib,
                            seconds=seconds,
                            compute_gpu_hour=price.compute_gpu_hour,
                            memory_gib_hour=price.memory_gib_hour,
                        ),
                    )
                )
    UsageRecord.objects.bulk_create(records, batch_size=2000)
    SliceMeter.objects.bulk_create(
        [SliceMeter(slice_id=s.id, metered_until=now) for s in slices],
        update_conflicts=True,
        unique_fields=["slice"],
        update_fields=["metered_until"],
        batch_size=2000,
    )
    return records


# --- budgets -------------------------------------------------------------------


def notification_send(*, tenant_id, kind: str, message: str, now: datetime | None = None):
    """Tell a tenant's people: a notice on its pages, pushed live, and e-mailed to its owners and admins once committed.

    Billing's budgets send these; pools sends idle notices through ``ocenter.seams``.
    """
    Notification.objects.create(tenant_id=tenant_id, kind=kind, message=message[:500], created_at=now or timezone.now())
    publish_on_commit([tenant_group(tenant_id), STAFF_GROUP], {"kind": "budget.alert", "tenant": str(tenant_id), "message": message})
    recipients = list(
        get_user_model()
        .objects.filter(memberships__tenant_id=tenant_id, memberships__role__in=[Role.OWNER, Role.ADMIN])
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if recipients:
        transaction.on_commit(lambda: send_mail(f"[oCenter] {message[:80]}", message, None, recipients, fail_silently=True))


def budgets_evaluate(*, now: datetime | None = None) -> dict:
    """Fire each threshold crossed (once per period) and carry out the action of every budget at its limit."""
    now = now or timezone.now()
    fired, stopped = 0, 0
    for budget in Budget.objects.select_related("tenant", "project"):
        spent = budget_spent(budget, now)
        percent = spent / budget.amount * 100
        period_start, _ = budget_period(budget, now)
        with transaction.atomic():
            for threshold in sorted(budget.thresholds):
                if percent < threshold:
                    break
                _, created = BudgetAlert.objects.get_or_create(
                    budget=budget,
                    period_start=period_start,
                    threshold=threshold,
                    defaults={"spent": to_cents(spent), "fired_at": now},
                )
                if created:
                    fired += 1
                    notification_send(
                        tenant_id=budget.tenant_id,
                        kind="budget",
                        message=f"{budget} has spent {to_cents(spent)} {settings.OCENTER_CURRENCY} "
                        f"({percent:.0f}% of {budget.amount}) — threshold {threshold}%",
                        now=now,
                    )
        if percent >= 100:
            stopped += _enforce(budget, period_start, now)
    return {"alerts": fired, "stopped": stopped}


def _enforce(budget: Budget, period_start: datetime, now: datetime) -> int:
    """What a budget at its limit does to running work: stop borrowed work, or everything after the grace period."""
    if budget.action not in (Budget.Action.STOP_BORROWED, Budget.Action.STOP_ALL):
        return 0
    running = Allocation.objects.filter(tenant_id=budget.tenant_id, state__in=(State.RUNNING, State.QUEUED, State.CLAIMING))
    if budget.project_id:
        running = running.filter(project_id=budget.project_id)
    if budget.action == Budget.Action.STOP_BORROWED:
        running = running.filter(priority__in=[Allocation.Priority.OFFLINE, Allocation.Priority.INTERRUPTIBLE])
    else:
        reached = BudgetAlert.objects.filter(budget=budget, period_start=period_start, threshold__gte=100).order_by("fired_at").first()
        reached_at = reached.fired_at if reached else now
        if (now - reached_at).total_seconds() < budget.grace_seconds:
            return 0
    stopped = 0
    for allocation in running:
        allocation_release(actor=None, allocation=allocation, reason=f"budget {budget} is spent ({budget.get_action_display()})")
        stopped += 1
    return stopped


@transaction.atomic
def budget_set(
    *,
    actor,
    tenant,
    project=None,
    period: str = Budget.Period.MONTHLY,
    amount: Decimal,
    thresholds: tuple[int, ...] = (50, 80, 100),
    action: str = Budget.Action.NOTIFY,
    grace_seconds: int = 3600,
    starts_at: datetime | None = None,
) -> Budget:
    """Create or change the budget of a tenant or project."""
    budget = Budget.objects.filter(tenant=tenant, project=project).first() or Budget(tenant=tenant, project=project)
    created = budget._state.adding
    for name, value in dict(
        period=period, amount=amount, thresholds=sorted(set(thresholds)), action=action, grace_seconds=grace_seconds, starts_at=starts_at
    ).items():
        setattr(budget, name, value)
    budget.save()
    audit_record(
        actor=actor,
        action="budget.create" if created else "budget.update",
        obj=budget,
        tenant_id=tenant.id,
        changes={"period": period, "amount": str(amount), "thresholds": budget.thresholds, "action": action},
    )
    return budget


# --- statements ----------------------------------------------------------------


def statement_lines(*, tenant, month: datetime) -> list[dict]:
    """Lines of a month's bill from the usage records: by project, pool, model and class, each to the cent."""
    start, end = month, next_month(month)
    rows = (
        UsageRecord.objects.filter(tenant=tenant, start__gte=start, start__lt=end)
        .values("project_id", "project__slug", "pool_name", "accelerator_model", "priority")
        .annotate(total=Sum("amount"), unit_seconds=Sum(F("seconds") * F("compute_units"), output_field=DecimalField()))
        .order_by("project__slug", "pool_name", "accelerator_model", "priority")
    )
    lines = []
    for row in rows:
        lines.append(
            {
                "project_id": row["project_id"],
                "pool_name": row["pool_name"],
                "accelerator_model": row["accelerator_model"],
                "priority": row["priority"],
                "description": f"{row['project__slug']} · {row['pool_name']} · {row['accelerator_model']} · {row['priority']}",
                "gpu_hours": (row["unit_seconds"] / COMPUTE_UNITS_PER_GPU / 3600).quantize(Decimal("0.0001")),
                "amount": to_cents(row["total"]),
            }
        )
    for adjustment in Adjustment.objects.filter(tenant=tenant, month=start.date()):
        lines.append(
            {
                "project_id": None,
                "pool_name": "",
                "accelerator_model": "",
                "priority": "",
                "description": f"adjustment: {adjustment.reason}",
                "gpu_hours": Decimal(0),
                "amount": adjustment.amount,
            }
        )
    return lines


@transaction.atomic
def statement_close(*, actor, tenant, month: datetime, now: datetime | None = None) -> Statement:
    """Freeze a past month's bill. It never changes after; corrections are adjustments in an open month."""
    now = now or timezone.now()
    if next_month(month) > now:
        raise DomainError(f"{month:%Y-%m} has not ended yet; it can be closed from {next_month(month):%Y-%m-%d}", field="month")
    if Statement.objects.filter(tenant=tenant, month=month.date()).exists():
        raise Conflict(f"the statement for {month:%Y-%m} is closed already")
    lines = statement_lines(tenant=tenant, month=month)
    statement = Statement.objects.create(
        tenant=tenant,
        month=month.date(),
        currency=settings.OCENTER_CURRENCY,
        total=sum((line["amount"] for line in lines), Decimal("0.00")),
        closed_at=now,
        closed_by=actor if getattr(actor, "pk", None) else None,
    )
    StatementLine.objects.bulk_create([StatementLine(statement=statement, **line) for line in lines])
    audit_record(
        actor=actor,
        action="statement.close",
        obj=statement,
        tenant_id=tenant.id,
        changes={"month": f"{month:%Y-%m}", "total": str(statement.total)},
    )
    return statement


@transaction.atomic
def adjustment_add(*, actor, tenant, amount: Decimal, reason: str, now: datetime | None = None) -> Adjustment:
    """A correction (credit or charge) in the current, open month."""
    month = month_start(now or timezone.now(), local_tz()).date()
    if Statement.objects.filter(tenant=tenant, month=month).exists():
        raise Conflict(f"{month:%Y-%m} is closed; corrections go into the next month")
    adjustment = Adjustment.objects.create(
        tenant=tenant, month=month, amount=amount, reason=reason, created_by=actor if getattr(actor, "pk", None) else None
    )
    audit_record(
        actor=actor, action="adjustment.create", obj=adjustment, tenant_id=tenant.id, changes={"amount": str(amount), "reason": reason}
    )
    return adjustment
