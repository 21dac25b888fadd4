"""
The audit log: ``audit_record`` is called by every service that changes state,
inside the service's transaction, so the entry and the change commit together.

Who is asking and from where is request metadata: the middleware puts the
source IP in a context variable, so services need only be told the actor.
"""

from contextvars import ContextVar

from ocenter.models import AuditEntry

# Per request: the client's address, and the credential used ("token ocn_Ab…").
_context: ContextVar[dict | None] = ContextVar("ocenter_audit_context", default=None)


class AuditContextMiddleware:
    """Remembers the client's address for the audit entries this request writes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _context.set({"ip": request.META.get("REMOTE_ADDR") or None, "via": None})
        try:
            return self.get_response(request)
        finally:
            _context.reset(token)


def audit_via(credential: str):
    """Note that this request acts through ``credential`` (an API token), for the actor label."""
    context = _context.get()
    if context is not None:
        context["via"] = credential


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    context = _context.get() or {}
    label = actor.get_username()
    return f"{label} via {context['via']}" if context.get("via") else label


def audit_record(*, actor, action: str, obj, changes: dict | None = None, tenant_id=None) -> AuditEntry:
    """Write one audit entry for ``obj``; call it inside the changing transaction.

    ``actor`` is a user (or None for oCenter itself); ``changes`` maps field
    names to ``[old, new]`` or to a value, and must hold no secret.
    """
    entry = audit_entry(actor=actor, action=action, obj=obj, changes=changes, tenant_id=tenant_id)
    entry.save(force_insert=True)
    return entry


def audit_entry(*, actor, action: str, obj, changes: dict | None = None, tenant_id=None) -> AuditEntry:
    """The audit entry ``audit_record`` writes, unsaved: for a caller that writes it with the change in one statement."""
    user = actor if getattr(actor, "pk", None) and getattr(actor, "is_authenticated", False) else None
    return AuditEntry(
        actor=user,
        actor_label=actor_label(actor),
        tenant_id=tenant_id,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes or {},
        source_ip=(_context.get() or {}).get("ip"),
    )


def field_changes(before: dict, after: dict) -> dict:
    """``{field: [old, new]}`` for the fields whose value differs."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def audit_attempt(*, request, action: str, changes: dict, user=None, label: str = "") -> AuditEntry:
    """An entry for an attempt that changed nothing (a failed login, a refused action): who, from where, what was tried."""
    user = user if getattr(user, "is_authenticated", False) else None
    return AuditEntry.objects.create(
        actor=user,
        actor_label=(actor_label(user) if user else label or "anonymous")[:150],
        action=action,
        object_type="request",
        object_id="",
        object_repr=f"{request.method} {request.path}"[:200],
        changes=changes,
        source_ip=request.META.get("REMOTE_ADDR") or None,
    )


def login_failed(sender, credentials, request=None, **kwargs):
    """``user_login_failed``: every wrong password (the page, Basic on the token exchange) is recorded, without the password."""
    if request is not None:
        username = str(credentials.get("username", ""))[:150]
        audit_attempt(request=request, action="login.failed", label=username, changes={"username": username})


def login_locked_out(sender, request, username, ip_address, **kwargs):
    """django-axes' ``user_locked_out``: the username is paused for that address."""
    audit_attempt(request=request, action="login.locked_out", label=str(username or ""), changes={"username": username, "ip": ip_address})
