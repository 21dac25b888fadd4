#!/usr/bin/env python3
"""
The northbound API under schemathesis, as CI runs it: a throwaway PostgreSQL
database, a real simulated agent, oCenter under uvicorn in production mode,
and every operation of /api/v1/schema/ driven with a tenant member's token
and with a staff token, stateful phase included.

    DATABASE_URL=postgres://app:app@127.0.0.1:5432/app .venv/bin/python .ci/schemathesis.py [--max-time 60]

The database named in DATABASE_URL is left alone: the run creates
``<name>_schemathesis`` beside it and drops it at the end (the staff token's
stateful run deletes and closes real objects). Fails on any server error or
response that does not match the schema.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"


def _throwaway(url: str) -> str:
    import psycopg

    parts = urlparse(url)
    name = f"{parts.path.lstrip('/')}_schemathesis"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return parts._replace(path=f"/{name}").geturl()


def _drop(url: str, base: str):
    import psycopg

    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{urlparse(url).path.lstrip("/")}" WITH (FORCE)')


def _seed(agent) -> dict:
    """A pool on the agent, a tenant with a project, quota and price, and the two tokens."""
    from decimal import Decimal

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from billing.services import price_set
    from pools.services.pools import pool_register
    from pools.services.sync import pool_sync
    from tenants.models import Role
    from tenants.services import membership_add, project_create, quota_set, tenant_create, token_create

    staff = get_user_model().objects.create_user("operator", password="pw-operator-0123456789", is_staff=True)
    pool, _ = pool_register(actor=staff, name="bj", region="cn-beijing", agent_url=agent.url, token=agent.token)
    pool_sync(pool_id=pool.id)
    price_set(actor=staff, compute_gpu_hour=Decimal("10.00"), effective_from=timezone.now() - timezone.timedelta(days=1))
    acme = tenant_create(actor=staff, slug="acme", name="Acme")
    project_create(actor=staff, tenant=acme, slug="main", name="Main")
    quota_set(
        actor=staff,
        tenant=acme,
        project=None,
        guarantee_compute_units=400,
        limit_compute_units=800,
        guarantee_memory_mib=10**6,
        limit_memory_mib=2 * 10**6,
        guarantee_slices=16,
        limit_slices=32,
    )
    member, _ = membership_add(actor=staff, tenant=acme, username="alice", role=Role.MEMBER, password="pw-alice-0123456789")
    _, member_token = token_create(actor=staff, user=member.user, tenant=acme, name="schemathesis", role="")
    _, staff_token = token_create(actor=staff, user=staff, tenant=None, name="schemathesis", role="")
    from django.db import connections

    connections.close_all()
    return {"member": member_token, "staff": staff_token}


def _serve(env: dict, port: int) -> subprocess.Popen:
    import httpx

    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ocenter.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.3)
    server.kill()
    sys.exit("oCenter did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-time", type=int, default=60, help="seconds of fuzzing per token (default 60)")
    parser.add_argument("--seed", type=int, default=11, help="hypothesis seed (default 11)")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database whose role may create databases")

    from tests.agents import AgentProcess, a100_nodes
    from tests.servers import free_port

    url = _throwaway(base)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "ocenter.settings",
        "DEBUG": "0",
        "SECRET_KEY": "schemathesis-run-only-0123456789-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "0",
        "OCENTER_EMBEDDED_JOBS": "0",
        "LOG_LEVEL": "ERROR",  # a 4xx is what fuzzing expects; a 500 is logged at ERROR
        "OCENTER_PUBLIC_API_DOCS": "1",  # schemathesis reads the schema before it authenticates
        # Fuzzing sends thousands of requests from one address, wrong credentials among them: no throttle may answer them.
        "OCENTER_BAD_TOKENS_PER_MINUTE": "1000000",
        "OCENTER_LOGIN_FAILURE_LIMIT": "1000000",
        "OCENTER_TOKEN_RATE": "1000000/min",
        "OCENTER_TOKEN_EXCHANGE_RATE": "1000000/min",
    }
    env.pop("REDIS_URL", None)  # in-process events and tasks: the run needs no worker
    os.environ.update(env)  # the seeding below runs in this process, on the same settings
    os.environ.pop("REDIS_URL", None)
    agent = AgentProcess(Path(tempfile.mkdtemp(prefix="ocenter-schemathesis-")), "bj", [a100_nodes(2, gpus=4)]).start()
    server = None
    failed = False
    try:
        tokens = _seed(agent)
        port = free_port()
        server = _serve(env, port)
        base_url = f"http://127.0.0.1:{port}"
        schemathesis = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{base_url}/api/v1/schema/", "--url", base_url,
                        *f"--checks {CHECKS} --workers 1 --request-timeout 20 --seed {args.seed} --max-examples 30".split()]  # fmt: skip
        # The member runs first: the staff run may remove members, and leaving a tenant revokes one's tokens.
        for who, token in tokens.items():
            print(f"--- schemathesis with the {who} token", flush=True)
            auth = ["-H", f"Authorization: Bearer {token}"]
            # A stateful run would find its own token in GET /tokens and revoke it: revoking is run apart, statelessly.
            runs = [
                ["--phases", "examples,coverage,fuzzing,stateful", "--exclude-path-regex", "/revoke$", "--max-time", str(args.max_time)],
                ["--phases", "coverage,fuzzing", "--include-path-regex", "/revoke$"],
            ]
            for extra in runs:
                failed |= subprocess.run([*schemathesis, *auth, *extra], cwd=ROOT, env=env).returncode != 0
    finally:
        if server:
            server.terminate()
            server.wait(10)
        agent.stop()
        _drop(url, base)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
