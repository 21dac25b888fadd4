"""
The agent's HTTP server: protocol v1 over the standard library.

Threads, one per connection, with HTTP/1.1 keep-alive so oCenter reuses its
connections. Every answer is JSON; every error says what to change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import ssl
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pools.agent import AGENT_VERSION, COMPUTE_UNITS_PER_GPU, PROTOCOL_VERSION, exposition
from pools.agent.backends import Refused
from pools.agent.config import AgentConfig, ConfigError, parse_faults
from pools.agent.openapi import OPENAPI
from pools.agent.store import Claim, ClaimStore, DoesNotFit, IdInUse

log = logging.getLogger("pools.agent")

ALLOCATION_PATH = re.compile(r"^/v1/allocations/(?P<id>[^/]+)$")
MAX_BODY_BYTES = 64 * 1024
# oCenter sends an allocation's own labels (at most 32) and two of its own.
MAX_LABELS = 40


class ApiError(Exception):
    """An answer other than success, with a message that says what to change."""

    def __init__(self, status: int, detail: str, **extra):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


class AnswerLost(Exception):
    """A fault: the call was carried out, and its answer is dropped."""


class Agent:
    """Everything a request handler needs: config, backend, claims, faults."""

    def __init__(self, config: AgentConfig, backend, store: ClaimStore, token: str):
        self.config = config
        self.backend = backend
        self.store = store
        self._token_digest = hashlib.sha256(token.encode()).digest()
        self.faults = config.faults
        self.started_at = time.time()
        self._inventory_lock = threading.Lock()
        self._refresh_inventory()
        backend.watch(self._refresh_inventory)  # health changes show in the inventory, with a new generation
        backend.claims_changed(store.all())
        # Set by PUT /v1/faults; the serving loop closes the socket for that long.
        self.refuse_connections_seconds = 0.0
        self.refuse_requested = threading.Event()

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        digest = hashlib.sha256(header[len("Bearer ") :].strip().encode()).digest()
        return hmac.compare_digest(digest, self._token_digest)

    def _refresh_inventory(self):
        """Recompute the inventory; bump the generation when it changed.

        The generation is kept in the claims file, so it only ever grows, even
        across restarts with a different configuration.
        """
        with self._inventory_lock:
            nodes = self.backend.nodes()
            self.gpus = {gpu.uuid: gpu for node in nodes for gpu in node.gpus}
            body = [{"name": n.name, "accelerators": [g.as_inventory() for g in n.gpus]} for n in nodes]
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            generation = int(self.store.get_meta("generation") or 0)
            if self.store.get_meta("inventory_digest") != digest:
                generation += 1
                self.store.set_meta("generation", str(generation))
                self.store.set_meta("inventory_digest", digest)
            self.inventory = {"pool": self.config.pool, "generation": generation, "nodes": body}

    # --- the calls -------------------------------------------------------

    def health(self) -> dict:
        unhealthy = sum(1 for gpu in self.gpus.values() if not gpu.healthy)
        return {
            "status": "degraded" if unhealthy else "ok",
            "detail": f"{unhealthy} of {len(self.gpus)} GPUs unhealthy" if unhealthy else "",
            "pool": self.config.pool,
            "backend": self.backend.name,
            "version": AGENT_VERSION,
            "protocol": PROTOCOL_VERSION,
            "inventory_generation": self.inventory["generation"],
            "gpus": len(self.gpus),
            "claims": self.store.count(),
            "uptime_seconds": round(time.time() - self.started_at, 1),
            **self.backend.status(),
        }

    def allocations(self) -> dict:
        return {"allocations": [self._claim_body(c) for c in self.store.all()]}

    def allocation(self, claim_id: str) -> dict:
        """One claim, or 404: how oCenter settles a claim whose answer it never got."""
        claim = self.store.get(_check_id(claim_id))
        if claim is None:
            raise ApiError(404, f"this agent holds no claim {claim_id}")
        return self._claim_body(claim)

    def claim(self, claim_id: str, body, *, notify: bool = True) -> tuple[int, dict]:
        claim_id = _check_id(claim_id)
        spec = _check_claim_body(body)
        gpu = self.gpus.get(spec["gpu_uuid"])
        if gpu is None:
            raise ApiError(409, f"GPU {spec['gpu_uuid']} is not in this pool's inventory", code="gpu_unknown")
        if not gpu.healthy:
            reason = f": {gpu.health_reason}" if gpu.health_reason else ""
            raise ApiError(409, f"GPU {gpu.uuid} is unhealthy and takes no new claims{reason}", code="gpu_unhealthy")
        if spec["memory_mib"] > gpu.memory_mib:
            raise ApiError(
                409,
                f"memory_mib {spec['memory_mib']} exceeds GPU {gpu.uuid}'s {gpu.memory_mib} MiB",
                code="does_not_fit",
                free_compute_units=COMPUTE_UNITS_PER_GPU - self.store.used(gpu.uuid)[0],
                free_memory_mib=gpu.memory_mib - self.store.used(gpu.uuid)[1],
            )
        if self.store.get(claim_id) is None:  # a new claim (a repeated one is answered from the store)
            held = [c for c in self.store.all() if c.gpu_uuid == gpu.uuid]
            try:
                self.backend.check_claim(gpu, spec["compute_units"], spec["memory_mib"], held)
            except Refused as exc:
                raise ApiError(409, exc.detail, code=exc.code, **exc.figures) from None
        try:
            claim, created = self.store.claim(Claim(id=claim_id, **spec), memory_mib_total=gpu.memory_mib)
        except DoesNotFit as exc:
            raise ApiError(
                409,
                str(exc),
                code="does_not_fit",
                free_compute_units=exc.free_compute_units,
                free_memory_mib=exc.free_memory_mib,
            ) from None
        except IdInUse as exc:
            raise ApiError(409, str(exc), code="id_in_use", held=self._claim_body(exc.existing)) from None
        if created:
            log.info("claimed %s: %s units, %s MiB on %s", claim.id, claim.compute_units, claim.memory_mib, gpu.uuid)
            if notify:
                self.backend.claims_changed(self.store.all())
        return (201 if created else 200), self._claim_body(claim)

    def release(self, claim_id: str, *, notify: bool = True) -> dict:
        claim_id = _check_id(claim_id)
        claim = self.store.release(claim_id)
        if claim is not None:
            log.info("released %s on %s", claim.id, claim.gpu_uuid)
            if notify:
                self.backend.claims_changed(self.store.all())
        return {"id": claim_id, "released": claim is not None}

    def claim_many(self, body) -> dict:
        """Several claims in one call, each answered as ``PUT /v1/allocations/{id}`` would answer it (idempotent by id)."""
        results = []
        for item in _batch(body, "claims"):
            claim_id = item.get("id") if isinstance(item, dict) else None
            try:
                if claim_id is None:
                    raise ApiError(400, "each claim is an object with its id, gpu_uuid, compute_units, memory_mib and labels")
                status, answer = self.claim(str(claim_id), {k: v for k, v in item.items() if k != "id"}, notify=False)
            except ApiError as exc:
                status, answer = exc.status, {"status": exc.status, "detail": exc.detail, **exc.extra}
            results.append({"id": claim_id, "status": status, "body": answer})
        self.backend.claims_changed(self.store.all())  # once for the batch
        return {"results": results}

    def release_many(self, body) -> dict:
        """Several releases in one call, each answered as ``DELETE /v1/allocations/{id}`` would answer it."""
        results = []
        for claim_id in _batch(body, "ids"):
            try:
                results.append({"status": 200, "body": self.release(str(claim_id), notify=False)})
            except ApiError as exc:
                results.append({"status": exc.status, "body": {"id": claim_id, "status": exc.status, "detail": exc.detail}})
        self.backend.claims_changed(self.store.all())
        return {"results": results}

    def metrics(self) -> dict:
        by_gpu: dict[str, list[Claim]] = {}
        for claim in self.store.all():
            by_gpu.setdefault(claim.gpu_uuid, []).append(claim)
        gpus, claims = [], []
        for gpu in self.gpus.values():
            gpu_figures, claim_figures = self.backend.gpu_metrics(gpu, by_gpu.get(gpu.uuid, []))
            gpus.append(gpu_figures)
            claims.extend(claim_figures)
        return {"pool": self.config.pool, "time": time.time(), "accelerators": gpus, "allocations": claims}

    def set_faults(self, body) -> dict:
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object of fault knobs")
        try:
            faults = parse_faults(body, where="body")
        except ConfigError as exc:
            raise ApiError(422, str(exc)) from None
        refuse = body.get("refuse_connections_seconds", 0)
        if isinstance(refuse, bool) or not isinstance(refuse, (int, float)) or not 0 <= refuse <= 3600:
            raise ApiError(422, "'refuse_connections_seconds' must be a number from 0 to 3600")
        unknown = (set(faults.unhealthy_gpus) | set(faults.outside_use_mib)) - self._all_uuids()
        if unknown:
            raise ApiError(422, f"the faults name GPUs this pool does not have: {sorted(unknown)}")
        self.faults.latency_ms = faults.latency_ms
        self.faults.error_rate = faults.error_rate
        self.faults.unhealthy_gpus = faults.unhealthy_gpus
        self.faults.lost_claim_answer_rate = faults.lost_claim_answer_rate
        self.faults.outside_use_mib = faults.outside_use_mib
        self._refresh_inventory()
        if refuse:
            self.refuse_connections_seconds = float(refuse)
            self.refuse_requested.set()
        return {
            "latency_ms": self.faults.latency_ms,
            "error_rate": self.faults.error_rate,
            "unhealthy_gpus": self.faults.unhealthy_gpus,
            "lost_claim_answer_rate": self.faults.lost_claim_answer_rate,
            "outside_use_mib": self.faults.outside_use_mib,
            "refuse_connections_seconds": refuse,
        }

    def _all_uuids(self) -> set[str]:
        return {gpu.uuid for node in self.backend.nodes() for gpu in node.gpus}

    def _claim_body(self, claim: Claim) -> dict:
        body = claim.as_dict()
        gpu = self.gpus.get(claim.gpu_uuid)
        body["node"] = gpu.node if gpu else None
        # Every environment names its claim: the agent tells a claim's processes from anyone else's by it.
        body["env"] = {**self.backend.launch_env(gpu, claim.compute_units, claim.memory_mib), "OCENTER_CLAIM_ID": claim.id} if gpu else {}
        launch = self.backend.launch_spec(gpu, claim) if gpu else None
        if launch is not None:
            body["launch"] = launch
        template = gpu.template(claim.compute_units, claim.memory_mib) if gpu else None
        if template is not None:
            body["template"] = template.name
        return body


# The most claims or releases one batch call carries.
MAX_BATCH = 500


def _batch(body, key: str) -> list:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ApiError(400, f'send {{"{key}": [...]}} with 1 to {MAX_BATCH} items', field=key)
    return items


def _check_id(claim_id: str) -> str:
    try:
        return str(uuid.UUID(claim_id))
    except ValueError:
        raise ApiError(422, f"allocation id {claim_id!r} is not a UUID; use oCenter's allocation UUID") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_claim_body(body) -> dict:
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object with gpu_uuid, compute_units and memory_mib")
    errors = {}
    unknown = set(body) - {"gpu_uuid", "compute_units", "memory_mib", "labels"}
    for key in sorted(unknown):
        errors[key] = "unknown field"
    gpu_uuid = body.get("gpu_uuid")
    if not isinstance(gpu_uuid, str) or not gpu_uuid:
        errors["gpu_uuid"] = "required: the uuid of a GPU from GET /v1/inventory"
    units = body.get("compute_units")
    if not _is_int(units) or not 1 <= units <= COMPUTE_UNITS_PER_GPU:
        errors["compute_units"] = f"required: a whole number from 1 to {COMPUTE_UNITS_PER_GPU} ({COMPUTE_UNITS_PER_GPU} = one whole GPU)"
    memory = body.get("memory_mib")
    if not _is_int(memory) or memory < 1:
        errors["memory_mib"] = "required: a whole number of MiB, at least 1"
    labels = body.get("labels", {})
    if (
        not isinstance(labels, dict)
        or len(labels) > MAX_LABELS
        or not all(isinstance(k, str) and isinstance(v, str) and len(k) <= 63 and len(v) <= 255 for k, v in labels.items())
    ):
        errors["labels"] = f"an object of at most {MAX_LABELS} string keys (≤63 chars) to string values (≤255 chars)"
    if errors:
        raise ApiError(422, "the claim is not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors=errors)
    return {"gpu_uuid": gpu_uuid, "compute_units": units, "memory_mib": memory, "labels": labels}


class Handler(BaseHTTPRequestHandler):
    """Routes one request to the Agent and writes its JSON answer."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle's algorithm on, the body
    # would wait for the client's delayed ACK (40 ms on Linux) on every answer.
    disable_nagle_algorithm = True
    server_version = f"ocenter-agent/{AGENT_VERSION}"
    agent: Agent  # set on the subclass made by make_server

    def do_GET(self):
        self._dispatch("GET")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str):
        try:
            status, body = self._route(method)
        except AnswerLost:
            self.close_connection = True  # the work was done; the client never hears of it
            return
        except ApiError as exc:
            status, body = exc.status, {"status": exc.status, "detail": exc.detail, **exc.extra}
        except Exception:  # a bug must not take the agent down
            log.exception("error answering %s %s", method, self.path)
            status, body = 500, {"status": 500, "detail": "internal error in the agent; see its log"}
        self._send(status, body)

    def _route(self, method: str) -> tuple[int, dict]:
        path = self.path.split("?", 1)[0]
        if path == "/v1/openapi.json" and method == "GET":
            return 200, OPENAPI
        agent = self.agent
        if not agent.authorized(self.headers.get("Authorization")):
            raise ApiError(401, "missing or wrong bearer token: send 'Authorization: Bearer <pool token>'")
        body = self._read_body()
        if path == "/v1/faults" and method == "PUT":
            return 200, agent.set_faults(body)
        self._apply_faults()
        if path == "/v1/health" and method == "GET":
            return 200, agent.health()
        if path == "/v1/inventory" and method == "GET":
            return 200, agent.inventory
        if path == "/v1/allocations" and method == "GET":
            return 200, agent.allocations()
        if path == "/v1/metrics" and method == "GET":
            return 200, agent.metrics()
        if path == "/metrics" and method == "GET":  # the same figures for Prometheus, in its text format
            return 200, exposition.render(agent.metrics(), agent.gpus)
        match = ALLOCATION_PATH.match(path)
        if match and method == "GET":
            return 200, agent.allocation(match["id"])
        if match and method == "PUT":
            answer = agent.claim(match["id"], body)
            if agent.faults.lost_claim_answer_rate and random.random() < agent.faults.lost_claim_answer_rate:
                raise AnswerLost
            return answer
        if match and method == "DELETE":
            return 200, agent.release(match["id"])
        if path == "/v1/claims" and method == "POST":
            answer = agent.claim_many(body)
            if agent.faults.lost_claim_answer_rate and random.random() < agent.faults.lost_claim_answer_rate:
                raise AnswerLost
            return 200, answer
        if path == "/v1/releases" and method == "POST":
            return 200, agent.release_many(body)
        if match or path in (
            "/v1/health",
            "/v1/inventory",
            "/v1/allocations",
            "/v1/metrics",
            "/v1/faults",
            "/v1/claims",
            "/v1/releases",
            "/metrics",
        ):
            raise ApiError(405, f"{method} is not allowed on {path}")
        raise ApiError(404, f"no such endpoint {path}; see /v1/openapi.json")

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if not length:
            return None
        try:
            length = int(length)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        if length > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the body is not valid JSON") from None

    def _apply_faults(self):
        faults = self.agent.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if faults.error_rate and random.random() < faults.error_rate:
            raise ApiError(503, "injected fault: error_rate is set on this agent")

    def _send(self, status: int, body: dict | str):
        """A JSON document, or (a ``str``) Prometheus' text format."""
        text = isinstance(body, str)
        payload = body.encode() if text else json.dumps(body).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8" if text else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="ocenter-agent"')
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):
        log.debug("%s - %s", self.address_string(), format % args)


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def make_server(agent: Agent, host: str, port: int) -> AgentServer:
    """The agent's HTTP server: each connection read with ``read_timeout`` (an idle one is closed), over TLS when configured."""
    handler = type("BoundHandler", (Handler,), {"agent": agent, "timeout": agent.config.read_timeout})
    server = AgentServer((host, port), handler)
    if agent.config.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(agent.config.tls_cert, agent.config.tls_key)
        # The handshake happens in the connection's own thread (on its first read), not in the accepting loop.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server
