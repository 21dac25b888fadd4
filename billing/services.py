"""
Metering, budgets and statements. Each runs in transactions that write
their rows, their audit entries and their events together.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import DecimalField, F, Sum
from django.utils import timezone

from billing.models import Adjustment, Budget, BudgetAlert, Notification, Price, SliceMeter, Statement, StatementLine, UsageRecord
from billing.rating import amount, cut, midnights, month_start, next_month, seconds_between, to_cents
from billing.selectors import PriceBook, budget_period, budget_spent, due_slices, local_tz
from ocenter import reasons
from ocenter.audit import audit_record, field_changes
from ocenter.errors import Conflict, DomainError, Unprocessable
from ocenter.events import STAFF_GROUP, publish_on_commit, tenant_group
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU
from pools.models import Allocation, AllocationEvent, Slice
from pools.selectors import template_names
from pools.services.allocations import allocation_release
from tenants.models import Role

log = logging.getLogger(__name__)
State = Allocation.State
HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)


# --- price book ----------------------------------------------------------------


@transaction.atomic
def price_set(
    *,
    actor,
    pool_name: str = "",
    accelerator_model: str = "",
    template: str = "",
    priority: str = "",
    compute_gpu_hour: Decimal,
    memory_gib_hour: Decimal = Decimal(0),
    effective_from: datetime,
) -> Price:
    """Add a price from a moment on. Past usage keeps the prices it was metered at.

    A template's price applies to the slices cut to it (a template names one shape of one model: give the model too).
    """
    if template and not accelerator_model:
        raise Unprocessable("a template's price names its model too: give accelerator_model", field="accelerator_model")
    known = template_names(accelerator_model) if template else set()
    if known and template not in known:
        raise Unprocessable(
            f"{accelerator_model} is cut to {', '.join(sorted(known))}, not to '{template}': name one of them", field="template"
        )
    scope = {"pool_name": pool_name, "accelerator_model": accelerator_model, "template": template, "priority": priority}
    if Price.objects.filter(**scope, effective_from=effective_from).exists():
        raise Conflict("a price for this pool, model, template and class already starts at that moment", field="effective_from")
    price = Price.objects.create(
        **scope,
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


def _running_intervals(events: list[AllocationEvent], now: datetime) -> list[tuple[datetime, datetime, bool]]:
    """(entered running, left running, still running) for each stretch; one still running is open until ``now``."""
    intervals, since = [], None
    for event in events:
        if event.to_state == State.RUNNING and since is None:
            since = event.at
        elif event.from_state == State.RUNNING and event.to_state != State.RUNNING and since is not None:
            intervals.append((since, event.at, False))
            since = None
    if since is not None:
        intervals.append((since, now, True))
    return [(a, min(b, now), still or b > now) for a, b, still in intervals if min(b, now) > a or still]


def _marks(anchor: datetime, start: datetime, end: datetime) -> list[datetime]:
    """The slice's hour marks (``anchor`` + k hours) in (start, end]."""
    mark = anchor + ((start - anchor) // HOUR + 1) * HOUR
    marks = []
    while mark <= end:
        marks.append(mark)
        mark += HOUR
    return marks


def _priced_pieces(s: Slice, events: list[AllocationEvent], book: PriceBook, tz, now: datetime):
    """The slice's unmetered running time, cut as the ledger cuts it: ``(pieces, resume)``.

    A piece is a stretch of running time at one class, one price and on one
    day, at most an hour: cut at the slice's hour marks (its start + k hours),
    at price changes, local midnights and every step of its history. A piece
    is closed once its end has come. ``pieces``: ``(start, end, priority,
    price, closed)``, the open one (still running, at most one) last;
    ``resume``: where the next run starts (the open piece's start, or ``now``).
    So the same history gives the same pieces however often it is metered.
    """
    a = s.allocation
    since = s.metered_until or s.started_at
    reclassed = [e for e in events if e.previous_priority]
    classes = {a.priority, *(e.previous_priority for e in reclassed)}
    # Where a piece must end: a price change of any class it ran at, and every step of its history.
    changes = {c for p in classes for c in book.changes(s.pool.name, s.accelerator.model, p, a.template)} | {e.at for e in events}
    pieces, resume = [], now
    for start, end, still in _running_intervals(events, now):
        start = max(start, since)
        if end < start or (end == start and not still):
            continue
        points = {
            *_marks(s.started_at, start, end),
            *midnights(start, end + MICROSECOND, tz),
            *(c for c in changes if c <= end),
        }
        edges = cut(start, end, points) if end > start else []
        for number, (piece_start, piece_end) in enumerate(edges):
            closed = not (still and number == len(edges) - 1 and piece_end not in points)
            priority = next((e.previous_priority for e in reclassed if e.at > piece_start), a.priority)
            price = book.at(s.pool.name, s.accelerator.model, priority, piece_start, a.template)
            pieces.append((piece_start, piece_end, priority, price, closed))
        if still:
            resume = pieces[-1][0] if pieces and not pieces[-1][4] else now
    return pieces, resume


def _record(s: Slice, piece, tz) -> UsageRecord:
    start, end, priority, price, _ = piece
    seconds = seconds_between(start, end)
    a = s.allocation
    return UsageRecord(
        slice=s, allocation=a, tenant_id=a.tenant_id, project_id=a.project_id, pool_name=s.pool.name, accelerator_model=s.accelerator.model,
        template=a.template, priority=priority, start=start, end=end, day=start.astimezone(tz).date(), seconds=seconds,
        compute_units=s.compute_units, memory_mib=s.memory_mib, price=price,
        amount=amount(compute_units=s.compute_units, memory_mib=s.memory_mib, seconds=seconds, compute_gpu_hour=price.compute_gpu_hour,
                      memory_gib_hour=price.memory_gib_hour),
    )  # fmt: skip


# One statement meters every slice of one pool, model, template and class whose next piece is a whole hour that has ended:
# it ran all through, at one price, on one day. It writes their records, priced and rounded as rating.amount does,
# and moves their watermarks to the hour mark. It reads pools' tables and writes only billing's.
_NEXT_MARK = "s.started_at + (floor(EXTRACT(EPOCH FROM m.metered_until - s.started_at) / 3600) + 1) * interval '1 hour'"
_METER_STEADY_SQL = f"""
    WITH picked AS (
        SELECT s.id, s.allocation_id, a.tenant_id, a.project_id, s.compute_units, s.memory_mib, m.metered_until AS since,
               {_NEXT_MARK} AS until
          FROM billing_slicemeter m
          JOIN pools_slice s ON s.id = m.slice_id
          JOIN pools_allocation a ON a.id = s.allocation_id
          JOIN pools_accelerator g ON g.id = s.accelerator_id
         WHERE a.state = 'running' AND s.active AND s.pool_id = %(pool_id)s AND g.model = %(model)s AND a.priority = %(priority)s
           AND a.template = %(template)s
           AND m.metered_until >= %(floor)s AND {_NEXT_MARK} <= %(now)s
           AND (m.metered_until AT TIME ZONE %(tz)s)::date = ((({_NEXT_MARK}) - interval '1 microsecond') AT TIME ZONE %(tz)s)::date
           AND NOT EXISTS (SELECT 1 FROM pools_allocationevent e WHERE e.allocation_id = a.id AND e.at > m.metered_until)
    ), moved AS (
        UPDATE billing_slicemeter SET metered_until = picked.until FROM picked WHERE billing_slicemeter.slice_id = picked.id
    )
    INSERT INTO billing_usagerecord (slice_id, allocation_id, tenant_id, project_id, pool_name, accelerator_model, template, priority,
                                     start, "end", day, seconds, compute_units, memory_mib, price_id, amount)
    SELECT id, allocation_id, tenant_id, project_id, %(pool_name)s, %(model)s, %(template)s, %(priority)s, since, until,
           (since AT TIME ZONE %(tz)s)::date, EXTRACT(EPOCH FROM until - since), compute_units, memory_mib, %(price_id)s,
           round((compute_units::numeric / %(units_per_gpu)s * %(compute_gpu_hour)s + memory_mib::numeric / 1024 * %(memory_gib_hour)s)
                 * EXTRACT(EPOCH FROM until - since) / 3600, 6)
      FROM picked
    RETURNING tenant_id
"""


def _meter_steady(book: PriceBook, now: datetime, tz) -> list:
    """PostgreSQL: meter in bulk each slice whose next piece is a whole hour that ran through at one price on one day.

    That is every slice whose hour has come, on most runs. Returns the
    tenants of the records written; everything else is left to the exact,
    slice-by-slice path (a first piece, a step of its history, a price
    change or a midnight, a run that fell more than an hour behind).
    """
    scopes = (
        Slice.objects.filter(active=True, allocation__state=State.RUNNING, meter__metered_until__lte=now - HOUR)
        .values_list("pool_id", "pool__name", "accelerator__model", "allocation__priority", "allocation__template")
        .distinct()
        .order_by()
    )
    tenants = []
    with connection.cursor() as cursor:
        for pool_id, pool_name, model, priority, template in scopes:
            changes = [b for b in book.changes(pool_name, model, priority, template) if b < now]
            price = book.at(pool_name, model, priority, max(changes), template) if changes else None
            if price is None:
                continue  # the exact path says why it is not billed
            cursor.execute(
                _METER_STEADY_SQL,
                {
                    "pool_id": pool_id,
                    "pool_name": pool_name,
                    "model": model,
                    "template": template,
                    "priority": priority,
                    "now": now,
                    "floor": max(changes),
                    "tz": str(tz),
                    "price_id": price.id,
                    "compute_gpu_hour": price.compute_gpu_hour,
                    "memory_gib_hour": price.memory_gib_hour,
                    "units_per_gpu": COMPUTE_UNITS_PER_GPU,
                },
            )
            tenants += [row[0] for row in cursor.fetchall()]
    return tenants


def usage_meter(*, now: datetime | None = None) -> int:
    """Turn running time whose pieces have closed into priced usage records; returns how many were written.

    A record is at most an hour of one slice (see ``_priced_pieces``), so
    the ledger grows by about 25 rows a slice a day, however often this runs.
    Each slice has a watermark (``SliceMeter``), moved in the same transaction
    as the records, so a second run (or one after a crash) starts where the
    last commit ended; and the database refuses any record that would charge
    a moment twice, so two runs at once cannot both write. The open piece
    is counted when spend is read (``billing.selectors.unmetered``).
    """
    now = now or timezone.now()
    book, tz = PriceBook(), local_tz()
    try:
        with transaction.atomic():
            steady = _meter_steady(book, now, tz) if connection.vendor == "postgresql" else []
            exact = _meter_exact(book, now, tz)
            # Spend moved for every tenant whose work runs (its open pieces grew) or whose records were written:
            # tell each tenant's pages, and the console.
            moved = set(steady) | {r.tenant_id for r in exact} | set(_running_tenants())
            for tenant_id in moved:
                publish_on_commit([tenant_group(tenant_id)], {"kind": "usage.metered", "tenant": str(tenant_id)})
            if moved:
                publish_on_commit([STAFF_GROUP], {"kind": "usage.metered", "tenant": None})
    except IntegrityError:
        log.warning("another metering run got there first; nothing written by this one")
        return 0
    return len(steady) + len(exact)


def _running_tenants():
    return Allocation.objects.filter(state=State.RUNNING).values_list("tenant_id", flat=True).distinct().order_by()


def _meter_exact(book: PriceBook, now: datetime, tz) -> list[UsageRecord]:
    """Meter slice by slice, from their allocations' history, every slice that may have a piece closed since its watermark."""
    slices = list(due_slices(book, now, tz).select_related("allocation", "accelerator", "pool"))
    if not slices:
        return []
    events = defaultdict(list)
    for event in AllocationEvent.objects.filter(allocation_id__in={s.allocation_id for s in slices}).order_by("at", "id"):
        events[event.allocation_id].append(event)
    records, meters = [], []
    for s in slices:
        pieces, resume = _priced_pieces(s, events[s.allocation_id], book, tz, now)
        for piece in pieces:
            if not piece[4]:
                continue
            if piece[3] is None:
                log.warning("no price for %s/%s/%s at %s: not billed", s.pool.name, s.accelerator.model, piece[2], piece[0])
                continue
            records.append(_record(s, piece, tz))
        if resume != s.metered_until:
            meters.append(SliceMeter(slice_id=s.id, metered_until=resume))
    UsageRecord.objects.bulk_create(records, batch_size=2000)
    SliceMeter.objects.bulk_create(meters, update_conflicts=True, unique_fields=["slice"], update_fields=["metered_until"], batch_size=2000)
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
                        message=reasons.BUDGET_THRESHOLD
                        % {
                            "budget": budget,
                            "spent": to_cents(spent),
                            "currency": settings.OCENTER_CURRENCY,
                            "percent": f"{percent:.0f}",
                            "amount": budget.amount,
                            "threshold": threshold,
                        },
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
    after = dict(
        period=period, amount=amount, thresholds=sorted(set(thresholds)), action=action, grace_seconds=grace_seconds, starts_at=starts_at
    )
    if not created and not field_changes({name: getattr(budget, name) for name in after}, after):
        return budget  # the same budget again: nothing to write, nothing to record
    for name, value in after.items():
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
    """Lines of a month's bill from the usage records: by project, pool, model, template and class, each to the cent."""
    start, end = month, next_month(month)
    rows = (
        UsageRecord.objects.filter(tenant=tenant, start__gte=start, start__lt=end)
        .values("project_id", "project__slug", "pool_name", "accelerator_model", "template", "priority")
        .annotate(total=Sum("amount"), unit_seconds=Sum(F("seconds") * F("compute_units"), output_field=DecimalField()))
        .order_by("project__slug", "pool_name", "accelerator_model", "template", "priority")
    )
    lines = []
    for row in rows:
        scope = (row["project__slug"], row["pool_name"], row["accelerator_model"], row["template"], row["priority"])
        lines.append(
            {
                "project_id": row["project_id"],
                "pool_name": row["pool_name"],
                "accelerator_model": row["accelerator_model"],
                "template": row["template"],
                "priority": row["priority"],
                "description": " · ".join(part for part in scope if part),
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
                "template": "",
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
