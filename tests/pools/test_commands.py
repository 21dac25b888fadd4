"""``manage.py pool_register``."""

import io

import pytest
from django.core.management import CommandError, call_command

from ocenter.models import AuditEntry
from pools.models import Pool
from tests.agents import a100_nodes

pytestmark = pytest.mark.django_db


def test_register_from_the_command_line_with_the_token_from_the_environment(agents, monkeypatch, django_capture_on_commit_callbacks):
    agent = agents("bj", [a100_nodes(1, gpus=4)])
    monkeypatch.setenv("BJ_TOKEN", agent.token)
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "pool_register", "--name", "bj", "--region", "cn-beijing", "--agent-url", agent.url, "--token-env", "BJ_TOKEN", stdout=out
        )
    pool = Pool.objects.get(name="bj")
    assert pool.status == Pool.Status.HEALTHY and pool.accelerators.count() == 4
    assert agent.token not in out.getvalue()
    assert AuditEntry.objects.get(action="pool.register").actor_label == "system"


def test_generated_token_is_printed_once(monkeypatch):
    out = io.StringIO()
    call_command("pool_register", "--name", "new", "--region", "r", "--agent-url", "http://127.0.0.1:9", stdout=out)
    token = Pool.objects.get(name="new").agent_token
    assert f"shown once; start the agent with it): {token}" in out.getvalue()


def test_bad_input_is_a_clear_error_and_stores_nothing():
    with pytest.raises(CommandError, match="agent_url: Enter a valid URL"):
        call_command("pool_register", "--name", "x", "--region", "r", "--agent-url", "nope")
    assert not Pool.objects.exists()


def test_empty_token_variable_is_refused(monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    with pytest.raises(CommandError, match=r"\$NO_SUCH_TOKEN is empty"):
        call_command("pool_register", "--name", "x", "--region", "r", "--agent-url", "http://x", "--token-env", "NO_SUCH_TOKEN")
