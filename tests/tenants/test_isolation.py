"""
The isolation matrix: every role × every endpoint × own tenant / other tenant,
through an API token and through a browser session, asserting the exact status.

Two tenants, A and B, each with a project, a quota for the tenant and one for
the project, members of every role, and a token of its owner. The principal
under test belongs to A (or is staff, or belongs to nothing); "own" aims at A's
objects, "other" at B's.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Budget, Statement
from pools.models import Accelerator, Allocation, Node, Pool
from tenants.models import Membership, Project, Quota, Role, Tenant
from tenants.services import token_create

ROLES = ["owner", "admin", "member", "viewer"]
PRINCIPALS = ["staff", *ROLES, "outsider"]


@dataclass
class World:
    tenant: dict
    project: dict
    quota: dict
    project_quota: dict
    membership: dict  # of the viewer
    owner_token: dict


def _build(name: str, users: dict) -> dict:
    User = get_user_model()
    tenant = Tenant.objects.create(slug=name, name=name.upper())
    project = Project.objects.create(tenant=tenant, slug="p", name="P")
    for role in ROLES:
        user = User.objects.create_user(f"{role}-{name}", password="pw-0123456789")
        users[f"{role}-{name}"] = user
        Membership.objects.create(tenant=tenant, user=user, role=role)
    amounts = dict(
        guarantee_compute_units=100,
        limit_compute_units=200,
        guarantee_memory_mib=1000,
        limit_memory_mib=2000,
        guarantee_slices=4,
        limit_slices=8,
    )
    quota = Quota.objects.create(tenant=tenant, **amounts)
    project_quota = Quota.objects.create(
        tenant=tenant, project=project, guarantee_compute_units=10, limit_compute_units=20, limit_memory_mib=1000, limit_slices=2
    )
    owner_token, _ = token_create(actor=None, user=users[f"owner-{name}"], tenant=tenant, name="owner's")
    allocation = Allocation.objects.create(tenant=tenant, project=project, compute_units=10, memory_mib=100)
    spare = Project.objects.create(tenant=tenant, slug="spare", name="Spare")
    budget = Budget.objects.create(tenant=tenant, amount=Decimal("100.00"), thresholds=[50, 100])
    statement = Statement.objects.create(
        tenant=tenant, month=date(2026, 9, 1), currency="CNY", total=Decimal("0.00"), closed_at=timezone.now()
    )
    return {
        "tenant": tenant,
        "project": project,
        "spare_project": spare,
        "budget": budget,
        "statement": statement,
        "quota": quota,
        "project_quota": project_quota,
        "membership": Membership.objects.get(tenant=tenant, role="viewer"),
        "owner_token": owner_token,
        "allocation": allocation,
    }


def _full_pool() -> Pool:
    """A live pool whose one GPU is full: a request is admitted and waits, no agent is called."""
    pool = Pool.objects.create(name="full", region="r", agent_url="http://127.0.0.1:9", token_ciphertext="-", status=Pool.Status.HEALTHY)
    node = Node.objects.create(pool=pool, name="n1")
    Accelerator.objects.create(
        pool=pool,
        node=node,
        uuid="GPU-full",
        index=0,
        vendor="NVIDIA",
        model="A100",
        memory_mib=81920,
        allocated_compute_units=100,
        allocated_memory_mib=81920,
    )
    return pool


@pytest.fixture
def world(db):
    users = {}
    pool = _full_pool()
    a, b = _build("a", users), _build("b", users)
    a["pool"] = b["pool"] = pool
    users["staff"] = get_user_model().objects.create_user("staff", password="pw-0123456789", is_staff=True)
    users["outsider"] = get_user_model().objects.create_user("outsider", password="pw-0123456789")
    return users, a, b


def _client(users, a, principal, auth):
    client = APIClient()
    user = users[principal if principal in ("staff", "outsider") else f"{principal}-a"]
    if auth == "session":
        client.force_authenticate(user=None)
        client.force_login(user)
    else:
        tenant = None if principal == "staff" else a["tenant"]
        _, secret = token_create(actor=None, user=user, tenant=tenant, name="matrix")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


# --- what each operation expects ------------------------------------------------


def read(principal, own):
    """Reading one object: members of its tenant and staff; anyone else cannot tell it exists."""
    return 200 if principal == "staff" or (own and principal in ROLES) else 404


def write(minimum, ok=200):
    def expect(principal, own):
        if principal == "staff":
            return ok
        if not own or principal == "outsider":
            return 404
        return ok if Role.rank(principal) >= Role.rank(minimum) else 403

    return expect


def create_in(minimum, ok=201, staff_only=False):
    """Creating in a tenant named in the body: a tenant one cannot reach reads as 'does not exist' (400)."""

    def expect(principal, own):
        if principal == "staff":
            return ok
        if not own or principal == "outsider":
            return 400
        if staff_only:
            return 403
        return ok if Role.rank(principal) >= Role.rank(minimum) else 403

    return expect


def own_token(principal, own):
    """The owner's token: the owner itself, the tenant's admins, staff."""
    if principal == "staff":
        return 200
    return 200 if own and principal in ("owner", "admin") else 404


def members_only(principal, own):
    return 403 if principal == "outsider" else 200


def admins_only(principal, own):
    return 200 if principal in ("staff", "owner", "admin") else 403


def anyone(principal, own):
    return 200


AMOUNTS = {"guarantee_compute_units": 1, "limit_compute_units": 2}


@dataclass
class Op:
    name: str
    method: str
    path: Callable
    body: Callable | None
    expect: Callable


OPS = [
    Op("list tenants", "get", lambda w: "/api/v1/tenants", None, anyone),
    Op("read tenant", "get", lambda w: f"/api/v1/tenants/{w['tenant'].id}", None, read),
    Op(
        "create tenant",
        "post",
        lambda w: "/api/v1/tenants",
        lambda w: {"slug": "new", "name": "New"},
        lambda p, own: 201 if p == "staff" else 403,
    ),
    Op("rename tenant", "patch", lambda w: f"/api/v1/tenants/{w['tenant'].id}", lambda w: {"name": "Renamed"}, write("owner")),
    Op(
        "suspend tenant",
        "patch",
        lambda w: f"/api/v1/tenants/{w['tenant'].id}",
        lambda w: {"status": "suspended"},
        lambda p, own: 200 if p == "staff" else (404 if not own or p == "outsider" else 403),
    ),
    Op("list projects", "get", lambda w: "/api/v1/projects", None, anyone),
    Op("read project", "get", lambda w: f"/api/v1/projects/{w['project'].id}", None, read),
    Op(
        "create project",
        "post",
        lambda w: "/api/v1/projects",
        lambda w: {"tenant": w["tenant"].slug, "slug": "q", "name": "Q"},
        create_in("admin"),
    ),
    Op("change project", "patch", lambda w: f"/api/v1/projects/{w['project'].id}", lambda w: {"name": "P2"}, write("admin")),
    Op("delete project", "delete", lambda w: f"/api/v1/projects/{w['spare_project'].id}", None, write("admin", ok=204)),
    Op("list members", "get", lambda w: "/api/v1/memberships", None, anyone),
    Op("read member", "get", lambda w: f"/api/v1/memberships/{w['membership'].id}", None, read),
    Op(  # adding someone directly is staff's; a tenant's admins invite (consent: issue 15)
        "add member",
        "post",
        lambda w: "/api/v1/memberships",
        lambda w: {"tenant": w["tenant"].slug, "username": "newbie", "role": "member"},
        lambda p, own: 201 if p == "staff" else 403,
    ),
    Op("list invitations", "get", lambda w: "/api/v1/invitations", None, anyone),
    Op(
        "invite",
        "post",
        lambda w: "/api/v1/invitations",
        lambda w: {"tenant": w["tenant"].slug, "username": "newbie", "role": "member"},
        create_in("admin"),
    ),
    Op("list webhooks", "get", lambda w: "/api/v1/webhooks", None, anyone),
    Op(
        "register webhook",
        "post",
        lambda w: "/api/v1/webhooks",
        lambda w: {"tenant": w["tenant"].slug, "url": "https://127.0.0.1/ocenter", "events": ["allocation.updated"]},
        create_in("admin"),
    ),
    Op("change role", "patch", lambda w: f"/api/v1/memberships/{w['membership'].id}", lambda w: {"role": "member"}, write("admin")),
    Op("remove member", "delete", lambda w: f"/api/v1/memberships/{w['membership'].id}", None, write("admin", ok=204)),
    Op("list quotas", "get", lambda w: "/api/v1/quotas", None, anyone),
    Op("read quota", "get", lambda w: f"/api/v1/quotas/{w['quota'].id}", None, read),
    Op(
        "set tenant quota",
        "post",
        lambda w: "/api/v1/quotas",
        lambda w: {"tenant": w["tenant"].slug, "pool_name": "other-pool", **AMOUNTS},
        create_in("owner", staff_only=True),
    ),
    Op(
        "change tenant quota",
        "patch",
        lambda w: f"/api/v1/quotas/{w['quota'].id}",
        lambda w: {"guarantee_compute_units": 50, "limit_compute_units": 150},
        lambda p, own: 200 if p == "staff" else (404 if not own or p == "outsider" else 403),
    ),
    Op("divide quota to project", "patch", lambda w: f"/api/v1/quotas/{w['project_quota'].id}", lambda w: AMOUNTS, write("admin")),
    Op("list tokens", "get", lambda w: "/api/v1/tokens", None, anyone),
    Op("read owner's token", "get", lambda w: f"/api/v1/tokens/{w['owner_token'].id}", None, own_token),
    Op("create token", "post", lambda w: "/api/v1/tokens", lambda w: {"tenant": w["tenant"].slug, "name": "t"}, create_in("viewer")),
    Op("revoke owner's token", "post", lambda w: f"/api/v1/tokens/{w['owner_token'].id}/revoke", None, own_token),
    Op("list allocations", "get", lambda w: "/api/v1/allocations", None, anyone),
    Op("read allocation", "get", lambda w: f"/api/v1/allocations/{w['allocation'].id}", None, read),
    Op("read allocation usage", "get", lambda w: f"/api/v1/allocations/{w['allocation'].id}/usage", None, read),
    Op(
        "request allocation",
        "post",
        lambda w: "/api/v1/allocations",
        lambda w: {"project": str(w["project"].id), "compute_units": 10, "memory_mib": 100},
        create_in("member"),
    ),
    Op("release allocation", "delete", lambda w: f"/api/v1/allocations/{w['allocation'].id}", None, write("member")),
    Op("list prices", "get", lambda w: "/api/v1/prices", None, members_only),
    Op(
        "set a price",
        "post",
        lambda w: "/api/v1/prices",
        lambda w: {"compute_gpu_hour": "9.5", "effective_from": "2026-12-01T00:00:00Z"},
        lambda p, own: 201 if p == "staff" else 403,
    ),
    Op("read usage", "get", lambda w: "/api/v1/usage", None, members_only),
    Op("list budgets", "get", lambda w: "/api/v1/budgets", None, anyone),
    Op("read budget", "get", lambda w: f"/api/v1/budgets/{w['budget'].id}", None, read),
    Op(
        "set budget",
        "post",
        lambda w: "/api/v1/budgets",
        lambda w: {"tenant": w["tenant"].slug, "project": str(w["project"].id), "amount": "50.00"},
        create_in("admin"),
    ),
    Op("remove budget", "delete", lambda w: f"/api/v1/budgets/{w['budget'].id}", None, write("admin", ok=204)),
    Op("list statements", "get", lambda w: "/api/v1/statements", None, anyone),
    Op("read statement", "get", lambda w: f"/api/v1/statements/{w['statement'].id}", None, read),
    Op("statement as csv", "get", lambda w: f"/api/v1/statements/{w['statement'].id}/csv", None, read),
    Op(
        "close a month",
        "post",
        lambda w: "/api/v1/statements",
        lambda w: {"tenant": w["tenant"].slug, "month": "2026-10-01"},
        lambda p, own: 201 if p == "staff" else 403,
    ),
    Op("read audit log", "get", lambda w: "/api/v1/audit", None, admins_only),
    Op("list pools", "get", lambda w: "/api/v1/pools", None, members_only),
    Op("read pool utilization", "get", lambda w: f"/api/v1/pools/{w['pool'].id}/utilization", None, members_only),
    Op("list accelerators", "get", lambda w: "/api/v1/accelerators", None, members_only),
]

CASES = [
    pytest.param(op, principal, own, auth, id=f"{auth}-{principal}-{'own' if own else 'other'}-{op.name.replace(' ', '_')}")
    for op in OPS
    for principal in PRINCIPALS
    for own in ((True,) if principal in ("staff", "outsider") else (True, False))
    for auth in ("token", "session")
]


@pytest.mark.parametrize("op, principal, own, auth", CASES)
def test_isolation_matrix(world, op, principal, own, auth, settings):
    settings.OCENTER_WEBHOOKS_ALLOW_PRIVATE = True  # the webhook registered points at this machine: no DNS, no network
    users, a, b = world
    client = _client(users, a, principal, auth)
    target = a if own else b
    body = op.body(target) if op.body else None
    response = getattr(client, op.method)(op.path(target), body, format="json")
    expected = op.expect(principal, own)
    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("path, model", [("tenants", Tenant), ("projects", Project), ("memberships", Membership), ("quotas", Quota)])
def test_lists_hold_only_the_principals_tenants(world, principal, path, model):
    users, a, b = world
    client = _client(users, a, principal, "token")
    ids = {row["id"] for row in client.get(f"/api/v1/{path}?page_size=500").json()["results"]}
    tenant_field = "id" if model is Tenant else "tenant"
    everything = {str(i) for i in model.objects.values_list("id", flat=True)}
    of_a = {str(i) for i in model.objects.filter(**{tenant_field: a["tenant"].id}).values_list("id", flat=True)}
    expected = everything if principal == "staff" else (set() if principal == "outsider" else of_a)
    assert ids == expected and (principal == "outsider" or ids)


def test_every_api_route_is_in_the_matrix():
    """A new endpoint must join the matrix: fail when the router has a list route no op covers."""
    from ocenter.api_urls import router

    covered = {op.path(_Fake()).split("/")[3] for op in OPS}
    assert {prefix for prefix, _, _ in router.registry} == covered


class _Fake(dict):
    def __missing__(self, key):
        return type("Obj", (), {"id": "x", "slug": "x"})()
