"""
The audit log: ``audit_record`` is called by every service that changes state,
inside the service's transaction, so the entry and the change commit together.

Who is asking and from where is request metadata: the middleware puts the
source IP in a context variable, so services need only be told the actor.
"""

from contextvars import ContextVar

from ocenter.models import AuditEntry

_source_ip: ContextVar[str | None] = ContextVar("ocenter_source_ip", default=None)


class AuditContextMiddleware:
    """Remembers the client's address for the audit entries this request writes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _source_ip.set(request.META.get("REMOTE_ADDR") or None)
        try:
            return self.get_response(request)
        finally:
            _source_ip.reset(token)


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "audit_label", None) or actor.get_username()


def audit_record(*, actor, action: str, obj, changes: dict | None = None, tenant_id=None) -> AuditEntry:
    """Write one audit entry for ``obj``; call it inside the changing transaction.

    ``actor`` is a user (or None for oCenter itself); ``changes`` maps field
    names to ``[old, new]`` or to a value, and must hold no secret.
    """
    user = actor if getattr(actor, "pk", None) and getattr(actor, "is_authenticated", False) else None
    return AuditEntry.objects.create(
        actor=user,
        actor_label=actor_label(actor),
        tenant_id=tenant_id,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes or {},
        source_ip=_source_ip.get(),
    )


def field_changes(before: dict, after: dict) -> dict:
    """``{field: [old, new]}`` for the fields whose value differs."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
