"""
oCenter's side of the agent protocol v1.

One ``httpx.Client`` per agent URL is kept and shared across threads, so
calls reuse their connections. Transport failures (refused, timed out, reset)
and 5xx answers become ``AgentUnreachable``/``AgentError`` with a message fit
for a pool's status line.
"""

from __future__ import annotations

import re
import ssl
import threading
import time

import httpx
from django.conf import settings

from ocenter.metrics import AGENT_CALL_ERRORS, AGENT_CALL_SECONDS

# A call's name in the metrics: its method and path, a claim's id left out.
_CLAIM_ID = re.compile(r"(?<=^/v1/allocations/)[^/]+")


class AgentError(Exception):
    """The agent answered, but not with success."""

    def __init__(self, message: str, *, status: int | None = None, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = body or {}


class AgentUnreachable(AgentError):
    """No answer: connection refused, reset, or timed out."""


class AgentConflict(AgentError):
    """409: the GPU cannot hold the slice (or the id holds another one)."""


_clients: dict[str, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client(base_url: str) -> httpx.Client:
    with _clients_lock:
        client = _clients.get(base_url)
        if client is None:
            client = httpx.Client(
                base_url=base_url,
                timeout=httpx.Timeout(settings.OCENTER_AGENT_TIMEOUT, connect=settings.OCENTER_AGENT_CONNECT_TIMEOUT),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                # An agent over TLS with its own CA (or a self-signed certificate): OCENTER_AGENT_CA_FILE; else the system's CAs.
                verify=ssl.create_default_context(cafile=settings.OCENTER_AGENT_CA_FILE) if settings.OCENTER_AGENT_CA_FILE else True,
            )
            _clients[base_url] = client
        return client


class AgentClient:
    """The calls of protocol v1 against one pool's agent."""

    def __init__(self, base_url: str, token: str, pool: str = ""):
        self.base_url = base_url.rstrip("/")
        self.pool = pool or self.base_url  # its name in the metrics
        self._headers = {"Authorization": f"Bearer {token}"}

    @classmethod
    def for_pool(cls, pool) -> AgentClient:
        return cls(pool.agent_url, pool.agent_token, pool.name)

    def _call(self, method: str, path: str, **kwargs) -> tuple[int, dict]:
        call = f"{method} {_CLAIM_ID.sub('{id}', path)}"
        started = time.perf_counter()
        try:
            response = _client(self.base_url).request(method, path, headers=self._headers, **kwargs)
        except httpx.TimeoutException:
            AGENT_CALL_ERRORS.labels(self.pool, "unreachable").inc()
            raise AgentUnreachable(f"{self.base_url} did not answer {method} {path} in time") from None
        except httpx.TransportError as exc:
            AGENT_CALL_ERRORS.labels(self.pool, "unreachable").inc()
            raise AgentUnreachable(f"cannot reach {self.base_url}: {exc.__class__.__name__} {exc}".strip()) from None
        finally:
            AGENT_CALL_SECONDS.labels(self.pool, call).observe(time.perf_counter() - started)
        if response.status_code >= 400:
            AGENT_CALL_ERRORS.labels(self.pool, "refused" if response.status_code == 409 else "error").inc()
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code == 409:
            raise AgentConflict(body.get("detail", "conflict"), status=409, body=body)
        if response.status_code >= 400:
            detail = body.get("detail") or response.reason_phrase
            raise AgentError(f"agent answered {response.status_code} to {method} {path}: {detail}", status=response.status_code, body=body)
        return response.status_code, body

    def health(self) -> dict:
        return self._call("GET", "/v1/health")[1]

    def inventory(self) -> dict:
        return self._call("GET", "/v1/inventory")[1]

    def allocations(self) -> list[dict]:
        return self._call("GET", "/v1/allocations")[1].get("allocations", [])

    def claim(self, allocation_id, *, gpu_uuid: str, compute_units: int, memory_mib: int, labels=None) -> dict:
        body = {"gpu_uuid": gpu_uuid, "compute_units": compute_units, "memory_mib": memory_mib, "labels": labels or {}}
        return self._call("PUT", f"/v1/allocations/{allocation_id}", json=body)[1]

    def claimed(self, allocation_id) -> dict | None:
        """The claim the agent holds under this id, or None: how a claim whose answer was lost is settled."""
        try:
            return self._call("GET", f"/v1/allocations/{allocation_id}")[1]
        except AgentError as exc:
            if exc.status == 404:
                return None
            raise

    def release(self, allocation_id) -> bool:
        return self._call("DELETE", f"/v1/allocations/{allocation_id}")[1].get("released", False)

    def claim_many(self, claims: list[dict]) -> dict:
        """Claim several slices in one call (``POST /v1/claims``): ``{claim id: its claim}`` for those held.

        Those missing were refused or not tried: the caller claims them one at
        a time, which tells why. An agent without the call (404, 405) answers {}.
        """
        try:
            results = self._call("POST", "/v1/claims", json={"claims": claims})[1].get("results", [])
        except AgentError as exc:
            if exc.status in (404, 405):
                return {}
            raise
        return {str(r.get("id")): r["body"] for r in results if isinstance(r, dict) and r.get("status") in (200, 201)}

    def release_many(self, ids: list) -> set:
        """Release several claims in one call (``POST /v1/releases``); the ids it answered for (released, or never held).

        An agent without the call (404, 405) is asked one claim at a time.
        """
        try:
            results = self._call("POST", "/v1/releases", json={"ids": [str(i) for i in ids]})[1].get("results", [])
        except AgentError as exc:
            if exc.status not in (404, 405):
                raise
            for claim_id in ids:
                self.release(claim_id)
            return {str(i) for i in ids}
        return {str(r["body"].get("id")) for r in results if isinstance(r, dict) and r.get("status") == 200}

    def metrics(self) -> dict:
        return self._call("GET", "/v1/metrics")[1]


# Seconds to wait before the 2nd, 3rd and 4th try of an agent call that timed out or failed.
AGENT_BACKOFF = (0.1, 0.4, 1.2)


def with_retries(call, *args, **kwargs):
    """``call(*args, **kwargs)``, tried again with backoff when it times out or the agent fails (5xx).

    A 409 or another 4xx is an answer, and is raised at once.
    """
    for delay in (*AGENT_BACKOFF, None):
        try:
            return call(*args, **kwargs)
        except AgentConflict:
            raise
        except AgentError as exc:
            if not isinstance(exc, AgentUnreachable) and exc.status and exc.status < 500:
                raise
            if delay is None:
                raise
            time.sleep(delay)


class PoolClients:
    """An ``AgentClient`` per pool for one piece of work, so each pool's token is decrypted once."""

    def __init__(self):
        self._by_pool = {}

    def __call__(self, pool) -> AgentClient:
        """The pool's client; ValueError when its token cannot be read back (the encryption keys changed)."""
        if pool.id not in self._by_pool:
            self._by_pool[pool.id] = AgentClient.for_pool(pool)
        return self._by_pool[pool.id]
