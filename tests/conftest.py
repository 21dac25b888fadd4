import pytest
from django.contrib.auth import get_user_model

from tests.agents import AgentProcess, a100_nodes
from tests.fleet import Fleet
from tests.servers import redis_server  # noqa: F401 (a fixture for every test)


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts with no throttle counted against it (the cache is this process's memory in tests), and no view
    of the fleet kept from another test's GPUs (a test that keeps the view for an hour would place on them)."""
    from django.core.cache import cache

    from pools.fleet import fleet

    cache.clear()
    fleet.forget()


@pytest.fixture
def agents(tmp_path):
    """Start real agents: ``agents("pool-a", [a100_nodes(2)])``; all stopped after the test."""
    started = []

    def start(pool: str = "pool-a", groups=None, token: str = "test-pool-token-0123456789") -> AgentProcess:
        agent = AgentProcess(tmp_path, pool, groups or [a100_nodes(2, gpus=4)], token=token).start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def fleet(agents, django_user_model, db):
    """One real agent (1 node × 2 A100), its pool synced; ``fleet.tenant(slug)`` adds a tenant with a member and quota."""
    return Fleet(agents, django_user_model)


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("operator", "operator@example.com", "pw-operator-1", is_staff=True)


@pytest.fixture
def outsider(db):
    """A logged-in user who is not staff: should have no access to the console."""
    return get_user_model().objects.create_user("outsider", "outsider@example.com", "pw-outsider-1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``redis`` need a Redis server: skipped without REDIS_URL, except in CI, where that is an error."""
    import os

    if os.environ.get("REDIS_URL"):
        return
    if os.environ.get("OCENTER_REQUIRE_SERVICES"):
        raise pytest.UsageError("OCENTER_REQUIRE_SERVICES is set but REDIS_URL is not")
    skip = pytest.mark.skip(reason="needs REDIS_URL")
    for item in items:
        if "redis" in item.keywords:
            item.add_marker(skip)
