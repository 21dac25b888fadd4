"""With the broker (a real Redis) stopped, work that committed answers its real status, and what it should start still happens."""

import time
import uuid

import pytest
import redis

from ocenter.celery import app
from pools.models import Accelerator, Allocation, Pool
from pools.services.allocations import allocation_request
from pools.services.sync import pool_sync
from tests.fleet import Fleet

pytestmark = pytest.mark.django_db(transaction=True)
State = Allocation.State


def _use_broker(url: str, *, eager: bool):
    app.conf.update(broker_url=url, task_always_eager=eager)
    app._pool = None  # Celery keeps its connections per broker: forget the old ones
    app.amqp._producer_pool = None


@pytest.fixture
def broker(redis_server):
    """Celery sends to the private Redis, for real (not eagerly); the test stops and starts it."""
    old = app.conf.broker_url
    _use_broker(redis_server.url, eager=False)
    yield redis_server
    _use_broker(old, eager=True)


def _until(check, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_a_release_with_the_broker_down_answers_200_and_the_queue_still_drains(agents, django_user_model, broker):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=1)
    tenant, project, user, client = fleet.tenant("acme")
    spec = {"count": 1, "compute_units": 100, "memory_mib": 1000}
    running = allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]
    waiting = allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]
    assert (running.state, waiting.state) == (State.RUNNING, State.QUEUED)

    broker.stop()
    response = client.delete(f"/api/v1/allocations/{running.id}")
    assert response.status_code == 200 and response.json()["state"] == "released"
    # The drain could not be enqueued: it ran in this process instead.
    assert _until(lambda: Allocation.objects.get(id=waiting.id).state == State.RUNNING), Allocation.objects.get(id=waiting.id).reason
    assert [c["id"] for c in fleet.claims()] == [str(waiting.slices.get().id)]

    broker.start()  # back: work is sent to the workers again, not run here
    assert client.delete(f"/api/v1/allocations/{waiting.id}").status_code == 200
    assert redis.Redis.from_url(broker.url).llen("celery") == 0  # nothing waits, so no drain was sent
    third = allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]
    fourth = allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]
    assert (third.state, fourth.state) == (State.RUNNING, State.QUEUED)
    client.delete(f"/api/v1/allocations/{third.id}")
    assert redis.Redis.from_url(broker.url).llen("celery") == 1  # the drain went to the broker, for a worker
    assert Allocation.objects.get(id=fourth.id).state == State.QUEUED


def test_a_pool_back_from_an_outage_is_reconciled_with_the_broker_down(agents, django_user_model, broker):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=1)
    gpu = Accelerator.objects.get()
    orphan = str(uuid.uuid4())
    fleet.agent.client().put(f"/v1/allocations/{orphan}", json={"gpu_uuid": gpu.uuid, "compute_units": 10, "memory_mib": 1})
    Pool.objects.filter(id=fleet.pool.id).update(status=Pool.Status.UNREACHABLE)

    broker.stop()
    assert pool_sync(pool_id=fleet.pool.id).status == Pool.Status.HEALTHY
    assert _until(lambda: fleet.claims() == []), "the reconcile after the outage ran in this process"
