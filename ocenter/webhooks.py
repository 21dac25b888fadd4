"""
Webhooks: events told to HTTPS endpoints that tenants' admins (or staff, for
the whole platform) register.

An event published (``ocenter.events.publish``) becomes a delivery for every
active webhook that asked for its kind and may see it (its tenant's events; all
of them for a platform webhook), and is sent by Celery: a POST of the event as
JSON, signed as Stripe and GitHub sign theirs::

    oCenter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the webhook's secret>

A receiver recomputes the HMAC with the secret it was shown once, and refuses
a timestamp older than a few minutes (a replay). A delivery that is not
answered 2xx is tried again after 10 s, 20 s, 40 s … (at most an hour apart),
``MAX_ATTEMPTS`` times in all; every try's outcome is kept where the owner reads
it, and any delivery can be sent again.
"""

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ocenter.audit import audit_record
from ocenter.crypto import secretbox
from ocenter.enqueue import enqueue_on_commit
from ocenter.errors import DomainError
from ocenter.models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)

KINDS = ("allocation.updated", "allocation.idle", "budget.alert")
MAX_ATTEMPTS = 8
TIMEOUT_SECONDS = 10
ADVISORY_NAMESPACE = 0x0C3E_0001  # pg_advisory_lock(namespace, endpoint): one sender an endpoint, across processes


def sign(secret: str, timestamp: int, body: str) -> str:
    """The ``oCenter-Signature`` header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def public_address_problem(url: str) -> str:
    """Why ``url`` may not be sent to ("" when it may): its host must resolve, and only to public addresses. A webhook
    is not a way into the platform's own network (a metadata service, the database) unless OCENTER_WEBHOOKS_ALLOW_PRIVATE."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError):
        return f"the host '{host}' does not resolve"
    if settings.OCENTER_WEBHOOKS_ALLOW_PRIVATE:
        return ""
    private = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_global)
    return f"'{host}' resolves to an address that is not public ({', '.join(private)})" if private else ""


def _check(url: str, events: list) -> list:
    if not url.startswith("https://") and not (settings.OCENTER_WEBHOOKS_ALLOW_HTTP and url.startswith("http://")):
        raise DomainError("url must be an https:// address: deliveries carry your tenant's events", field="url")
    if problem := public_address_problem(url):
        raise DomainError(f"url: {problem}; give an endpoint reachable on the internet", field="url")
    events = list(dict.fromkeys(events or []))
    unknown = [kind for kind in events if kind not in KINDS]
    if not events or unknown:
        raise DomainError(f"events must name one or more of {', '.join(KINDS)}" + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
                          field="events")  # fmt: skip
    return events


def webhook_create(*, actor, tenant_id, url: str, events: list) -> tuple[Webhook, str]:
    """Register an endpoint; returns it and its signing secret (shown this once)."""
    events = _check(url, events)
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        webhook = Webhook.objects.create(tenant_id=tenant_id, url=url, events=events, secret_ciphertext=secretbox().encrypt(secret),
                                         secret_prefix=secret[:12], created_by=actor if getattr(actor, "pk", None) else None)  # fmt: skip
        audit_record(actor=actor, action="webhook.create", obj=webhook, tenant_id=tenant_id, changes={"url": url, "events": events})
    _forget()
    return webhook, secret


def webhook_delete(*, actor, webhook: Webhook):
    with transaction.atomic():
        audit_record(actor=actor, action="webhook.delete", obj=webhook, tenant_id=webhook.tenant_id, changes={"url": webhook.url})
        webhook.delete()
    _forget()


def delivery_redeliver(*, actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again, now (its body as first signed, under a new timestamp), whatever became of it before."""
    with transaction.atomic():
        WebhookDelivery.objects.filter(id=delivery.id).update(state=WebhookDelivery.State.PENDING, next_attempt_at=timezone.now())
        audit_record(actor=actor, action="webhook.redeliver", obj=delivery.webhook, tenant_id=delivery.webhook.tenant_id,
                     changes={"delivery": str(delivery.id)})  # fmt: skip
    _send_soon([delivery.id])
    delivery.refresh_from_db()
    return delivery


# --- from events to deliveries ------------------------------------------------------

_active = {"at": 0.0, "webhooks": []}


def _forget():
    _active["at"] = 0.0


def _webhooks() -> list[Webhook]:
    """Active webhooks, read at most every ``OCENTER_WEBHOOKS_SECONDS`` by this process: an event costs no query when none is."""
    now = time.monotonic()
    if now - _active["at"] >= settings.OCENTER_WEBHOOKS_SECONDS:
        _active["webhooks"], _active["at"] = list(Webhook.objects.filter(active=True)), now
    return _active["webhooks"]


def on_event(groups, event: dict):
    """``ocenter.events``' sink: a delivery for every webhook that asked for this event and may see it."""
    kind = event.get("kind")
    if kind not in KINDS or event.get("replayed"):
        return
    tenant = str(event.get("tenant") or "")
    wanted = [w for w in _webhooks() if kind in w.events and (w.tenant_id is None or str(w.tenant_id) == tenant)]
    if not wanted:
        return
    body = json.dumps(event, default=str, sort_keys=True)
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(webhook=w, kind=kind, body=body, next_attempt_at=now) for w in wanted]
    )
    _send_soon([d.id for d in deliveries])


def _send_soon(ids):
    """Send these once committed: by a Celery worker, or (tasks run in-process) in a thread, never in the caller's request."""
    ids = [str(i) for i in ids]
    if settings.CELERY_TASK_ALWAYS_EAGER:
        transaction.on_commit(lambda: threading.Thread(target=_send_here, args=(ids,), name="webhooks", daemon=True).start())
        return
    enqueue_on_commit(deliver_webhooks, ids)


def _send_here(ids):
    from django.db import connections

    try:
        deliveries_send(ids=ids)
    except Exception:
        log.exception("webhook deliveries failed; the periodic run tries them again")
    finally:
        connections.close_all()


# --- sending -------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failed try a delivery is tried again: 10 s, doubled each time, an hour at most."""
    return timedelta(seconds=min(3600, 10 * 2 ** max(0, attempts - 1)))


def _client() -> httpx.Client:
    verify = ssl.create_default_context(cafile=settings.OCENTER_WEBHOOKS_CA_FILE) if settings.OCENTER_WEBHOOKS_CA_FILE else True
    return httpx.Client(timeout=TIMEOUT_SECONDS, verify=verify, follow_redirects=False)


def deliveries_send(*, ids=None, now=None) -> int:
    """Try the deliveries due to the endpoints of ``ids`` (every endpoint, when not given): sign, POST, record.

    One sender at a time an endpoint, its deliveries oldest first: the senders of events that follow each other
    (threads, Celery tasks) race, and a receiver must get ``queued`` before ``running``. A sender that finds the
    endpoint taken leaves its deliveries to the one sending there. Returns how many were delivered.
    """
    due = _due(now)
    endpoints = due.filter(id__in=ids) if ids is not None else due
    delivered = 0
    with _client() as client:
        for webhook_id in endpoints.order_by().values_list("webhook_id", flat=True).distinct():  # no ordering: one row an endpoint
            delivered += _send_endpoint(client, webhook_id, now)
    return delivered


def _due(now=None):
    return WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now or timezone.now())


def _send_endpoint(client: httpx.Client, webhook_id, now=None) -> int:
    """Send an endpoint's deliveries due, in order, while this sender holds it; a delivery that fails comes again later,
    after those behind it. Each is tried once a call; an endpoint that does not answer at all is left at its first."""
    delivered, tried = 0, set()

    def waiting():
        return _due(now).filter(webhook_id=webhook_id).exclude(id__in=tried)

    while True:
        with _endpoint_held(webhook_id) as held:
            if not held:
                return delivered
            for delivery in waiting().select_related("webhook").order_by("created_at", "id")[:200]:
                tried.add(delivery.id)
                answered = _send(client, delivery)
                if answered is None:  # refused, timed out: the rest would each wait as long, for the same answer
                    return delivered
                delivered += answered
        # More than a batch, or a sender that came while this one held the endpoint and left its deliveries here.
        if not waiting().exists():
            return delivered


def endpoint_lock_key(webhook_id) -> tuple[int, int]:
    """The pair that names an endpoint's advisory lock (its id's first 32 bits: a rare clash only serializes two)."""
    return ADVISORY_NAMESPACE, int.from_bytes(uuid.UUID(str(webhook_id)).bytes[:4], "big", signed=True)


_held_here: dict = {}
_held_here_lock = threading.Lock()


@contextmanager
def _endpoint_held(webhook_id):
    """Whether this sender holds the endpoint (yields False when another does). On PostgreSQL, the connection's advisory
    lock (across processes; every thread has its own connection); elsewhere, a lock of this process's."""
    if connection.vendor == "postgresql":
        key = endpoint_lock_key(webhook_id)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        return
    with _held_here_lock:
        local = _held_here.setdefault(webhook_id, threading.Lock())
    held = local.acquire(blocking=False)
    try:
        yield held
    finally:
        if held:
            local.release()


def _send(client: httpx.Client, delivery: WebhookDelivery) -> bool | None:
    """Try one delivery and record the outcome: whether the endpoint took it (None: it did not answer at all)."""
    secret = secretbox().decrypt(delivery.webhook.secret_ciphertext)
    stamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": "oCenter-Webhooks/1", "oCenter-Event": delivery.kind,
               "oCenter-Delivery": str(delivery.id), "oCenter-Signature": sign(secret, stamp, delivery.body)}  # fmt: skip
    status, error = None, public_address_problem(delivery.webhook.url)  # again at each send: DNS may have changed since
    try:
        if error:
            raise httpx.ConnectError(error)
        answer = client.post(delivery.webhook.url, content=delivery.body.encode(), headers=headers)
        status = answer.status_code
        if not 200 <= status < 300:
            error = f"answered {status}"
    except httpx.HTTPError as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:300]
    attempts = delivery.attempts + 1
    fields = {"attempts": attempts, "last_status": status, "last_error": error}
    if not error:
        fields.update(state=WebhookDelivery.State.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
    elif attempts >= MAX_ATTEMPTS:
        fields.update(state=WebhookDelivery.State.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=timezone.now() + backoff(attempts))
    WebhookDelivery.objects.filter(id=delivery.id, state=WebhookDelivery.State.PENDING).update(**fields)
    if error:
        log.info("webhook delivery %s to %s: %s (try %d)", delivery.id, delivery.webhook.url, error, attempts)
    return None if status is None else not error


@shared_task(name="ocenter.tasks.deliver_webhooks")
def deliver_webhooks(ids=None) -> int:
    """Send the deliveries due (of ``ids``, when given: those just made); the periodic run (every 10 s) sends the retries."""
    return deliveries_send(ids=ids)
