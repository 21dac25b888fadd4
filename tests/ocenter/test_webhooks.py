"""
Webhooks against a real HTTPS receiver on 127.0.0.1 (tests.servers.WebhookReceiver): every delivery signed with the
secret shown once, a tenant's events only to its tenant's endpoints, retries with backoff, a log the owner reads, and
redelivery.
"""

import hashlib
import hmac
import json
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from ocenter.events import publish
from ocenter.models import Webhook, WebhookDelivery
from ocenter.webhooks import deliveries_send, endpoint_lock_key
from tenants.models import Role
from tests.servers import WebhookReceiver, self_signed_certificate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(tmp_path, settings):
    certificate, key = self_signed_certificate(tmp_path)
    settings.OCENTER_WEBHOOKS_CA_FILE = str(certificate)  # the receiver's own CA, as a tenant with a private CA would give
    settings.OCENTER_WEBHOOKS_SECONDS = 0
    settings.OCENTER_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    served = WebhookReceiver(certificate, key)
    yield served
    served.stop()


def _verified(headers: dict, body: str, secret: str) -> bool:
    parts = dict(item.split("=", 1) for item in headers["oCenter-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.{body}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(parts["v1"], expected)


def _register(api, receiver) -> dict:
    """acme's endpoint for allocation.updated, as its admin registers it."""
    return api.post("/api/v1/webhooks", {"tenant": "acme", "url": receiver.url, "events": ["allocation.updated"]}, format="json").json()


def _publish_steps(tenant, count: int):
    """``count`` allocation events of the tenant's, one after another: step-0, step-1, …"""
    for step in range(count):
        publish([], {"kind": "allocation.updated", "tenant": str(tenant.id), "allocation": "a", "state": f"step-{step}"})


def test_a_tenants_events_reach_its_endpoint_signed_and_nobody_elses(fleet, receiver):
    tenant, project, admin, api = fleet.tenant("acme", role=Role.ADMIN)
    _, other_project, _, other_api = fleet.tenant("globex", role=Role.ADMIN)
    made = api.post("/api/v1/webhooks", {"tenant": "acme", "url": receiver.url, "events": ["allocation.updated"]}, format="json")
    assert made.status_code == 201, made.content
    secret = made.json()["secret"]
    assert secret.startswith("whsec_") and secret not in Webhook.objects.get().secret_ciphertext  # kept encrypted, shown once
    assert "secret" not in api.get(f"/api/v1/webhooks/{made.json()['id']}").json()
    api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": 50, "memory_mib": 1024}, format="json")
    other_api.post("/api/v1/allocations", {"project": str(other_project.id), "compute_units": 50, "memory_mib": 1024}, format="json")
    received = receiver.wait_for(3)
    assert len(received) == 3  # requested, placed, running: acme's own, none of globex's
    for headers, body in received:
        event = json.loads(body)
        assert headers["oCenter-Event"] == "allocation.updated" and event["tenant"] == str(tenant.id) and _verified(headers, body, secret)
    assert [json.loads(b)["state"] for _, b in received] == ["queued", "claiming", "running"]
    log = api.get(f"/api/v1/webhooks/{made.json()['id']}/deliveries").json()
    assert len(log) == 3 and {d["state"] for d in log} == {"delivered"} and all(d["attempts"] == 1 for d in log)
    assert other_api.get(f"/api/v1/webhooks/{made.json()['id']}/deliveries").status_code == 404  # another tenant's: not there


def test_one_endpoints_events_arrive_in_the_order_they_happened_however_many_senders_run(fleet, receiver):
    """Each event's delivery is handed to a sender of its own (a thread here, a Celery task in production): they race."""
    tenant, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    _register(api, receiver)
    _publish_steps(tenant, 12)
    received = receiver.wait_for(12)
    assert [json.loads(body)["state"] for _, body in received] == [f"step-{step}" for step in range(12)]
    assert WebhookDelivery.objects.filter(state="delivered").count() == 12


@pytest.mark.skipif(connection.vendor != "postgresql", reason="across processes, the endpoint's lock is PostgreSQL's")
def test_an_endpoint_another_process_is_sending_to_is_left_to_it(fleet, receiver):
    tenant, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    hook = _register(api, receiver)
    with psycopg.connect(**connection.get_connection_params()) as other:  # another process's sender, at this endpoint
        other.execute("SELECT pg_advisory_lock(%s, %s)", endpoint_lock_key(hook["id"]))
        _publish_steps(tenant, 2)
        time.sleep(1)
        assert receiver.received == [] and WebhookDelivery.objects.filter(state="pending").count() == 2
    # That sender gone (its connection closed, its lock with it): the periodic run sends them, in order.
    assert deliveries_send() == 2
    assert [json.loads(body)["state"] for _, body in receiver.received] == ["step-0", "step-1"]


def test_an_endpoint_that_does_not_answer_costs_one_try_a_run_not_one_a_delivery(fleet, receiver):
    """A receiver gone (refused, or a 10 s timeout each) must not hold up a run, and every endpoint behind it, per delivery."""
    tenant, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    hook = Webhook.objects.get(id=_register(api, receiver)["id"])
    receiver.stop()
    for step in range(3):
        WebhookDelivery.objects.create(
            webhook=hook, kind="allocation.updated", body=f'{{"state": "step-{step}"}}', next_attempt_at=timezone.now()
        )
    assert deliveries_send() == 0
    tries = dict(WebhookDelivery.objects.values_list("body", "attempts"))
    assert tries == {'{"state": "step-0"}': 1, '{"state": "step-1"}': 0, '{"state": "step-2"}': 0}  # the oldest tried; the rest wait
    assert "ConnectError" in WebhookDelivery.objects.get(attempts=1).last_error


def test_a_failing_endpoint_is_tried_again_with_backoff_and_a_delivery_can_be_sent_again(fleet, receiver):
    tenant, project, admin, api = fleet.tenant("acme", role=Role.ADMIN)
    hook = _register(api, receiver)
    receiver.answers = [500, 503, 500]  # requested, placed and running are each answered with an error first
    api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": 50, "memory_mib": 1024}, format="json")
    receiver.wait_for(3)
    pending = WebhookDelivery.objects.filter(state="pending")
    assert pending.count() == 3 and {d.last_status for d in pending} == {500, 503}
    first = pending.order_by("next_attempt_at").first()
    assert timedelta(seconds=8) < first.next_attempt_at - timezone.now() <= timedelta(seconds=10)  # 10 s after the first failure
    assert deliveries_send() == 0  # not due yet
    assert deliveries_send(now=timezone.now() + timedelta(seconds=11)) == 3
    assert WebhookDelivery.objects.filter(state="delivered", attempts=2).count() == 3 and len(receiver.received) == 6
    again = api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{first.id}/redeliver")
    assert again.status_code == 200
    received = receiver.wait_for(7)
    assert len(received) == 7 and json.loads(received[-1][1]) == json.loads(first.body)


def test_an_endpoint_must_be_https_and_be_registered_by_the_tenants_admins(fleet, receiver, settings):
    _, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    _, _, _, member_api = fleet.tenant("globex", role=Role.MEMBER)
    plain = api.post(
        "/api/v1/webhooks", {"tenant": "acme", "url": "http://example.com/hook", "events": ["allocation.updated"]}, format="json"
    )
    assert plain.status_code == 400 and "https://" in plain.json()["errors"]["url"][0]
    unknown = api.post("/api/v1/webhooks", {"tenant": "acme", "url": receiver.url, "events": ["pool.exploded"]}, format="json")
    assert unknown.status_code == 400 and "pool.exploded" in unknown.json()["errors"]["events"][0]
    refused = member_api.post("/api/v1/webhooks", {"tenant": "globex", "url": receiver.url, "events": ["budget.alert"]}, format="json")
    assert refused.status_code == 403
    assert api.post("/api/v1/webhooks", {"url": receiver.url, "events": ["budget.alert"]}, format="json").status_code == 403  # platform's
    assert not Webhook.objects.exists()


def test_an_endpoint_inside_the_platforms_network_is_refused(fleet, settings):
    _, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    settings.OCENTER_WEBHOOKS_ALLOW_PRIVATE = False
    for url in ("https://127.0.0.1:8443/hook", "https://169.254.169.254/latest/meta-data", "https://10.0.0.5/hook", "https://[::1]/hook"):
        refused = api.post("/api/v1/webhooks", {"tenant": "acme", "url": url, "events": ["budget.alert"]}, format="json")
        assert refused.status_code == 400 and "not public" in refused.json()["errors"]["url"][0], url
    assert not Webhook.objects.exists()
